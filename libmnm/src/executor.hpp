// Running the graphs for planned mixes (runtime/executor.py): batches of at most max_batch, the
// codes cached on (encoder, reference digest), the background on the bytes of (z_bg, b), the shape
// feature on (z_pose, p) or on the pose reference's digest (feature mode). Only g_child runs per
// combination. Graphs run outside the cache locks: two threads that miss one entry both compute it.
#ifndef MNM_SRC_EXECUTOR_HPP
#define MNM_SRC_EXECUTOR_HPP

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "backend.hpp"
#include "cache.hpp"

namespace mnm {

// A prepared reference: 3 x S x S model input and its content key (sha256 of the floats).
struct Ref {
    Values array;
    std::string digest;
};
using RefPtr = std::shared_ptr<const Ref>;
RefPtr make_ref(std::vector<float> array);

// The inputs of one g_child run before the cached stages are looked up.
struct Plan {
    Values z_bg, b, c;
    Values z_pose, p;     // code mode
    RefPtr feature_ref;   // feature mode: S(this reference)
    Values shape_feature; // given directly (none of the above)
    std::map<std::string, RefPtr> refs; // factor -> its reference image, for stitching
};

// What g_child gives for one plan: the image (3 x S x S) and the child mask (1 x S x S).
struct Composed {
    std::vector<float> image;
    std::vector<float> child_mask;
};

using EncodeJobs = std::map<std::pair<std::string, std::string>, RefPtr>; // (encoder, digest) -> reference

class Executor {
public:
    Executor(const ModelConfig &config, const Backend &backend, int max_batch, size_t cache_size = 256);

    // Runs `graph` over the whole batch in chunks of max_batch.
    Outputs run(const std::string &graph, const Feeds &feeds, const std::vector<std::string> &outputs = {}) const;
    // (encoder, digest) -> code vector, each pair computed once and cached.
    std::map<std::pair<std::string, std::string>, Values> encode(const EncodeJobs &jobs);
    std::vector<Values> backgrounds(const std::vector<Plan> &plans);
    std::vector<Values> shape_features(const std::vector<Plan> &plans);
    // The cached stages, then g_child for every plan in batches.
    std::vector<Composed> compose(const std::vector<Plan> &plans);

private:
    using FeedsOf = std::function<Feeds(const std::vector<size_t> &)>;
    std::vector<Values> cached_stage(Lru &cache, const std::vector<std::string> &keys, const std::string &graph,
                                     const FeedsOf &feeds_of, const std::string &output);

    const ModelConfig config_;
    const Backend &backend_;
    int max_batch_;
    Lru codes_, backgrounds_, features_;
};

// Feeds rows: `rows[i]` each of `row_shape`, stacked into one tensor named `name`.
std::pair<std::string, Tensor> stacked(const std::string &name, const std::vector<int64_t> &row_shape,
                                       const std::vector<const float *> &rows);

} // namespace mnm

#endif
