// The factors of a request (runtime/requests.py): a reference image with an optional box, a code
// (code:K), a z seed (seed:N), or nothing (random); and their resolution into concrete codes.
//   background: b and z_bg; pose: z_pose (no code:); shape: p, texture: c (no seed:).
#ifndef MNM_SRC_FACTORS_HPP
#define MNM_SRC_FACTORS_HPP

#include <memory>
#include <optional>
#include <string>

#include "bundle.hpp"
#include "cache.hpp"
#include "imaging.hpp"
#include "random.hpp"

namespace mnm {

enum class Kind { Background, Pose, Shape, Texture };
const char *kind_name(Kind kind);

struct Factor {
    std::shared_ptr<const Rgb> image; // a reference image, or
    std::optional<Box> box;           //   its object box
    std::optional<int64_t> code;      // code:K (background, shape, texture)
    std::optional<int64_t> seed;      // seed:N (background, pose)
    std::string label;                // how grids show it: a file name, "background 2", "code:3", "random"
    std::string source;               // the same image source and box give the same key (one reference)

    bool is_image() const { return image != nullptr; }
};
using FactorPtr = std::shared_ptr<const Factor>;

// A spec: "random", "code:K", "seed:N" or an image file path (decoded by load_image).
FactorPtr parse_spec(const std::string &spec, Kind kind);
// An image the caller lent, with an optional box (checked against it); `source` identifies the buffer.
FactorPtr image_factor(std::shared_ptr<const Rgb> image, const std::optional<Box> &box, const std::string &label,
                       const std::string &source, Kind kind);
// Nothing given: sampled.
FactorPtr random_factor();

// Concrete codes of a non-image factor: the category one-hot (sampled uniformly if not given) and
// z (from the seed, or sampled standard normal); the ones the kind does not have stay null.
struct Codes {
    Values code;
    Values z;
};
Codes resolve(const Factor &factor, Kind kind, const ModelConfig &config, Random &random);

// The z of seed:N (the same in every process).
std::vector<float> z_from_seed(int64_t seed, int z_dim);

} // namespace mnm

#endif
