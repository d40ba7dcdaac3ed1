// A float32 tensor: the shape (batch first) and its values, row-major.
#ifndef MNM_SRC_TENSOR_HPP
#define MNM_SRC_TENSOR_HPP

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace mnm {

struct Tensor {
    std::vector<int64_t> shape;
    std::vector<float> data;

    int64_t rows() const { return shape.empty() ? 0 : shape[0]; }
    size_t row_size() const
    {
        size_t n = 1;
        for (size_t i = 1; i < shape.size(); ++i)
            n *= size_t(shape[i]);
        return n;
    }
    const float *row(size_t i) const { return data.data() + i * row_size(); }
};

using Feeds = std::vector<std::pair<std::string, Tensor>>; // graph input name -> value
using Outputs = std::map<std::string, Tensor>;             // graph output name -> value

} // namespace mnm

#endif
