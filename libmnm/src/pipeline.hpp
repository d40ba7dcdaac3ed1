// Pipeline: a bundle's graphs composed into mixes, grids, codes, generated images and animations,
// as the Python runtime's Pipeline (runtime/pipeline.py, planner.py, animator.py). A pipeline is
// shared by many threads: its state is the backend's sessions and the executor's locked caches.
#ifndef MNM_SRC_PIPELINE_HPP
#define MNM_SRC_PIPELINE_HPP

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "backend.hpp"
#include "bundle.hpp"
#include "executor.hpp"
#include "factors.hpp"
#include "imaging.hpp"

namespace mnm {

enum class Mode { Code, Feature };
enum class Stitch { None, Background, Foreground };

// One combination of four factors (shape null: sampled in code mode, from the pose in feature mode).
struct MixFactors {
    FactorPtr background, pose, shape, texture;
};

struct GridResult {
    Rgb image;
    std::vector<Rgb> cells; // in the order background, pose, shape, texture (texture fastest)
};

// Codes of reference images, count x dim each; an empty vector when not asked for.
struct EncodedCodes {
    std::vector<float> z, b, p, c;
};

class Pipeline {
public:
    Pipeline(Bundle bundle, const BackendOptions &options, Fit fit, const OrtLibrary &ort);

    const Bundle &bundle() const { return bundle_; }
    const ModelConfig &config() const { return bundle_.config(); }
    const std::string &description() const { return backend_->description(); }
    // Throws MNM_ERR_UNSUPPORTED when the bundle lacks the mode.
    void require_mode(Mode mode) const;

    // The S x S reference pixels of an image (fit or box), as the model sees them.
    Rgb prepare(const Rgb &image, const std::optional<Box> &box, const std::string &source) const;

    std::vector<Rgb> render(const std::vector<MixFactors> &mixes, Mode mode, uint32_t seed, Stitch stitch);
    // Every combination of the lists; an empty list is one random factor (shape: none).
    GridResult grid(std::vector<FactorPtr> background, std::vector<FactorPtr> pose, std::vector<FactorPtr> shape,
                    std::vector<FactorPtr> texture, Mode mode, uint32_t seed, Stitch stitch);
    EncodedCodes encode(const std::vector<std::shared_ptr<const Rgb>> &images, bool z, bool b, bool p, bool c);
    // Rows of z_bg, b, z_pose, p, c (count each) -> count generated images.
    std::vector<Rgb> generate(int count, const float *z_bg, const float *b, const float *z_pose, const float *p,
                              const float *c);

    Executor &executor() { return executor_; }

private:
    std::vector<Plan> plan_mixes(const std::vector<MixFactors> &mixes, Mode mode, Random &random, Stitch stitch);
    RefPtr reference(const Factor &factor);

    Bundle bundle_;
    Fit fit_;
    std::unique_ptr<Backend> backend_;
    Executor executor_;
};

// img2gif frame by frame (runtime/animator.py): the static image's codes and background once;
// per frame enc_z -> g_parent -> g_child (code mode) or extractor -> g_child (feature mode).
class Animator {
public:
    Animator(Pipeline &pipeline, const Rgb &static_image, Mode mode, const std::optional<Box> &static_box,
             const std::optional<Box> &frame_box);
    Rgb frame(const Rgb &frame);

private:
    Pipeline &pipeline_;
    Mode mode_;
    std::optional<Box> frame_box_;
    Values b_, c_, p_, background_;
};

} // namespace mnm

#endif
