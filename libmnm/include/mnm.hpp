// mnm.hpp: a header-only C++17 wrapper of mnm.h. Handles close themselves (RAII), failures throw
// mnm::Error (the status and the message of mnm_last_error), images own their pixels.
//
//   mnm::Pipeline pipe("mnm/assets/demo/bundle");
//   mnm::Image out = pipe.mix(mnm::ImageView(rgb, w, h, stride), "seed:3", "code:1", "random");
//   mnm::save_image("mix.png", out);
//
// Threads: a Pipeline's const methods may run concurrently from many threads (mnm.h); moving or
// destroying it while others use it is, as for any C++ object, not allowed.
#ifndef MNM_HPP
#define MNM_HPP

#include <algorithm>
#include <array>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "mnm.h"

namespace mnm {

enum class Mode { Code = MNM_MODE_CODE, Feature = MNM_MODE_FEATURE };
enum class Stitch { None = MNM_STITCH_NONE, Background = MNM_STITCH_BACKGROUND, Foreground = MNM_STITCH_FOREGROUND };

// A failed call: status() is the mnm_status, what() the message.
class Error : public std::runtime_error {
public:
    Error(mnm_status status, const std::string &message) : std::runtime_error(message), status_(status) {}
    mnm_status status() const noexcept { return status_; }
    const char *status_name() const noexcept { return mnm_status_name(status_); }

private:
    mnm_status status_;
};

inline void check(mnm_status status)
{
    if (status != MNM_OK)
        throw Error(status, mnm_last_error());
}

// Pixels owned elsewhere (a cv::Mat, a video frame), RGB8; must outlive the calls that read it.
class ImageView {
public:
    ImageView() = default;
    // stride 0: 3 * width (packed rows); size 0: exactly what the geometry spans.
    ImageView(const uint8_t *data, int width, int height, int stride = 0, size_t size = 0)
    {
        stride = stride != 0 ? stride : 3 * width;
        size_t spans = height > 0 ? size_t(stride) * size_t(height - 1) + size_t(3 * width) : 0;
        c_ = mnm_image{const_cast<uint8_t *>(data), size != 0 ? size : spans, width, height, stride, nullptr};
    }
    const uint8_t *data() const noexcept { return c_.data; }
    int width() const noexcept { return c_.width; }
    int height() const noexcept { return c_.height; }
    int stride() const noexcept { return c_.stride; }
    size_t size() const noexcept { return c_.size; }
    const mnm_image *c() const noexcept { return &c_; }

private:
    mnm_image c_{};
};

// An RGB8 image that owns its pixels: width x height, rows of stride() = 3 * width bytes.
class Image {
public:
    Image() = default;
    Image(int width, int height)
        : pixels_(size_t(width > 0 ? width : 0) * size_t(height > 0 ? height : 0) * 3), width_(width),
          height_(height)
    {
    }
    // A copy of a library-allocated image, which is freed.
    static Image adopt(mnm_image &allocated)
    {
        Image image(allocated.width, allocated.height);
        for (int y = 0; y < allocated.height; ++y)
            std::copy_n(allocated.data + size_t(y) * size_t(allocated.stride), size_t(3 * allocated.width),
                        image.data() + size_t(y) * size_t(image.stride()));
        mnm_image_free(&allocated);
        return image;
    }
    uint8_t *data() noexcept { return pixels_.data(); }
    const uint8_t *data() const noexcept { return pixels_.data(); }
    int width() const noexcept { return width_; }
    int height() const noexcept { return height_; }
    int stride() const noexcept { return 3 * width_; }
    size_t size() const noexcept { return pixels_.size(); }
    bool empty() const noexcept { return pixels_.empty(); }
    ImageView view() const noexcept { return ImageView(data(), width_, height_, stride(), size()); }
    operator ImageView() const noexcept { return view(); }
    // This image as the caller-provided output of a C call.
    mnm_image c_output() noexcept { return mnm_image{data(), size(), width_, height_, stride(), nullptr}; }
    bool operator==(const Image &other) const
    {
        return width_ == other.width_ && height_ == other.height_ && pixels_ == other.pixels_;
    }

private:
    std::vector<uint8_t> pixels_;
    int width_ = 0;
    int height_ = 0;
};

// One factor of a mix: an image, a spec ("random", "code:K", "seed:N", an image file path), or empty.
class Factor {
public:
    Factor() = default;
    Factor(const char *spec)
    {
        if (spec != nullptr)
            spec_ = spec;
    }
    Factor(std::string spec) : spec_(std::move(spec)) {}
    Factor(const ImageView &image) : image_(image) {}
    Factor(const Image &image) : image_(image.view()) {}
    // The object box x, y, w, h in pixels of the image (the crop is 1.5 x its larger side).
    Factor &box(double x, double y, double w, double h)
    {
        box_ = {x, y, w, h};
        return *this;
    }
    // The C struct; its pointers stay valid while this Factor lives unchanged.
    mnm_factor c() const noexcept
    {
        return mnm_factor{spec_ ? spec_->c_str() : nullptr, image_ ? image_->c() : nullptr,
                          box_ ? box_->data() : nullptr};
    }

private:
    std::optional<std::string> spec_;
    std::optional<ImageView> image_;
    std::optional<std::array<double, 4>> box_;
};

struct Options {
    std::string backend = "auto";
    int threads = 0;   // 0: the runtime's default
    int max_batch = 0; // 0: 16
    std::string precision = "auto"; // auto, fp32, fp16, int8
    std::string fit = "crop";       // crop, squash
    std::string onnxruntime_library; // empty: found as mnm.h says
};

struct Info {
    int image_size = 0, z_dim = 0, b_dim = 0, p_dim = 0, c_dim = 0;
    bool code_mode = false, feature_mode = false;
    std::vector<std::string> graphs;
    std::string bundle, backend, version, onnxruntime_library;
};

// Codes of `count` images or for `count` images, row-major count x dim: z (z_bg or z_pose), b, p, c.
struct Codes {
    int count = 0;
    std::vector<float> z, b, p, c;
};

// How an animator runs: the mode and the object boxes (x, y, w, h in pixels) of the static image
// and of every frame.
struct AnimatorOptions {
    Mode mode = Mode::Code;
    std::optional<std::array<double, 4>> static_box, frame_box;
};

struct Grid {
    Image image;              // the labelled grid
    std::vector<Image> cells; // texture fastest, then shape, pose, background
};

class Animator;

class Pipeline {
public:
    explicit Pipeline(const std::string &bundle, const Options &options = {})
    {
        mnm_pipeline_options c = MNM_PIPELINE_OPTIONS_INIT;
        c.backend = options.backend.c_str();
        c.threads = options.threads;
        c.max_batch = options.max_batch;
        c.precision = options.precision.c_str();
        c.fit = options.fit.c_str();
        c.onnxruntime_library = options.onnxruntime_library.empty() ? nullptr : options.onnxruntime_library.c_str();
        check(mnm_pipeline_open(bundle.c_str(), &c, &handle_));
        info_ = read_info();
    }
    Pipeline(Pipeline &&other) noexcept : handle_(std::exchange(other.handle_, nullptr)), info_(std::move(other.info_)) {}
    Pipeline &operator=(Pipeline &&other) noexcept
    {
        if (this != &other) {
            mnm_pipeline_close(handle_);
            handle_ = std::exchange(other.handle_, nullptr);
            info_ = std::move(other.info_);
        }
        return *this;
    }
    Pipeline(const Pipeline &) = delete;
    Pipeline &operator=(const Pipeline &) = delete;
    ~Pipeline() { mnm_pipeline_close(handle_); }

    // Close now and see the error, if any (the destructor closes quietly).
    void close() { check(mnm_pipeline_close(std::exchange(handle_, nullptr))); }

    const Info &info() const noexcept { return info_; }
    mnm_pipeline *handle() const noexcept { return handle_; }

    Image mix(const Factor &background, const Factor &pose, const Factor &shape, const Factor &texture,
              Mode mode = Mode::Code, uint32_t seed = 0, Stitch stitch = Stitch::None) const
    {
        mnm_mix_request request = MNM_MIX_REQUEST_INIT;
        request.background = background.c();
        request.pose = pose.c();
        request.shape = shape.c();
        request.texture = texture.c();
        request.mode = mnm_mode(mode);
        request.stitch = mnm_stitch(stitch);
        request.seed = seed;
        Image out(info_.image_size, info_.image_size);
        mnm_image c = out.c_output();
        check(mnm_mix(handle_, &request, &c));
        return out;
    }

    Grid grid(const std::vector<Factor> &background, const std::vector<Factor> &pose,
              const std::vector<Factor> &shape, const std::vector<Factor> &texture, Mode mode = Mode::Code,
              uint32_t seed = 0, Stitch stitch = Stitch::None) const
    {
        std::vector<mnm_factor> b = c_factors(background), p = c_factors(pose), s = c_factors(shape),
                                t = c_factors(texture);
        mnm_grid_request request = MNM_GRID_REQUEST_INIT;
        request.background = b.data();
        request.n_background = int32_t(b.size());
        request.pose = p.data();
        request.n_pose = int32_t(p.size());
        request.shape = s.data();
        request.n_shape = int32_t(s.size());
        request.texture = t.data();
        request.n_texture = int32_t(t.size());
        request.mode = mnm_mode(mode);
        request.seed = seed;
        request.stitch = mnm_stitch(stitch);
        size_t n = std::max<size_t>(b.size(), 1) * std::max<size_t>(p.size(), 1) * std::max<size_t>(s.size(), 1) *
                   std::max<size_t>(t.size(), 1);
        Grid grid;
        grid.cells.reserve(n);
        std::vector<mnm_image> cells;
        for (size_t i = 0; i < n; ++i) {
            grid.cells.emplace_back(info_.image_size, info_.image_size);
            cells.push_back(grid.cells.back().c_output());
        }
        mnm_image picture{};
        check(mnm_grid(handle_, &request, &picture, cells.data()));
        grid.image = Image::adopt(picture);
        return grid;
    }

    Codes encode(const std::vector<ImageView> &images) const
    {
        Codes codes;
        codes.count = int(images.size());
        codes.z.resize(images.size() * size_t(info_.z_dim));
        codes.b.resize(images.size() * size_t(info_.b_dim));
        codes.p.resize(images.size() * size_t(info_.p_dim));
        codes.c.resize(images.size() * size_t(info_.c_dim));
        std::vector<mnm_image> c;
        for (const ImageView &image : images)
            c.push_back(*image.c());
        mnm_codes out = MNM_CODES_INIT;
        out.count = codes.count;
        out.z = codes.z.data();
        out.b = codes.b.data();
        out.p = codes.p.data();
        out.c = codes.c.data();
        check(mnm_encode(handle_, c.data(), &out));
        return codes;
    }

    // One image per row: the background from (z_bg, b), the shape and pose from (z_pose, p), texture c.
    std::vector<Image> generate(int count, const std::vector<float> &z_bg, const std::vector<float> &b,
                                const std::vector<float> &z_pose, const std::vector<float> &p,
                                const std::vector<float> &c) const
    {
        const std::pair<const std::vector<float> *, int> rows[] = {
            {&z_bg, info_.z_dim}, {&b, info_.b_dim}, {&z_pose, info_.z_dim}, {&p, info_.p_dim}, {&c, info_.c_dim}};
        for (const auto &row : rows)
            if (count <= 0 || row.first->size() != size_t(count) * size_t(row.second))
                throw Error(MNM_ERR_ARGUMENT, "generate: each code needs count x its dimension floats");
        std::vector<Image> images;
        std::vector<mnm_image> out;
        for (int i = 0; i < count; ++i) {
            images.emplace_back(info_.image_size, info_.image_size);
            out.push_back(images.back().c_output());
        }
        mnm_generate_request request = MNM_GENERATE_REQUEST_INIT;
        request.count = count;
        request.z_bg = z_bg.data();
        request.b = b.data();
        request.z_pose = z_pose.data();
        request.p = p.data();
        request.c = c.data();
        check(mnm_generate(handle_, &request, out.data()));
        return images;
    }

    Animator animator(const ImageView &static_image, Mode mode = Mode::Code) const;
    Animator animator(const ImageView &static_image, const AnimatorOptions &options) const;

private:
    Info read_info() const
    {
        mnm_info c = MNM_INFO_INIT;
        check(mnm_pipeline_info(handle_, &c));
        Info info{c.image_size, c.z_dim, c.b_dim, c.p_dim, c.c_dim, c.has_code_mode != 0, c.has_feature_mode != 0,
                  std::vector<std::string>(c.graphs, c.graphs + c.graph_count), c.bundle, c.backend, c.version,
                  c.onnxruntime_library};
        return info;
    }
    static std::vector<mnm_factor> c_factors(const std::vector<Factor> &factors)
    {
        std::vector<mnm_factor> c;
        for (const Factor &factor : factors)
            c.push_back(factor.c());
        return c;
    }

    mnm_pipeline *handle_ = nullptr;
    Info info_;
};

// img2gif: a static image animated by the pose (and in feature mode the shape) of each frame.
class Animator {
public:
    Animator(const Pipeline &pipeline, const ImageView &static_image, const AnimatorOptions &options = {})
        : size_(pipeline.info().image_size)
    {
        mnm_animator_options c = MNM_ANIMATOR_OPTIONS_INIT;
        c.mode = mnm_mode(options.mode);
        c.static_box = options.static_box ? options.static_box->data() : nullptr;
        c.frame_box = options.frame_box ? options.frame_box->data() : nullptr;
        check(mnm_animator_open(pipeline.handle(), static_image.c(), &c, &handle_));
    }
    Animator(const Pipeline &pipeline, const ImageView &static_image, Mode mode)
        : Animator(pipeline, static_image, AnimatorOptions{mode, std::nullopt, std::nullopt})
    {
    }
    Animator(Animator &&other) noexcept : handle_(std::exchange(other.handle_, nullptr)), size_(other.size_) {}
    Animator &operator=(Animator &&other) noexcept
    {
        if (this != &other) {
            mnm_animator_close(handle_);
            handle_ = std::exchange(other.handle_, nullptr);
            size_ = other.size_;
        }
        return *this;
    }
    Animator(const Animator &) = delete;
    Animator &operator=(const Animator &) = delete;
    ~Animator() { mnm_animator_close(handle_); }

    Image frame(const ImageView &frame) const
    {
        Image out(size_, size_);
        mnm_image c = out.c_output();
        check(mnm_animator_frame(handle_, frame.c(), &c));
        return out;
    }
    mnm_animator *handle() const noexcept { return handle_; }

private:
    mnm_animator *handle_ = nullptr;
    int size_ = 0;
};

inline Animator Pipeline::animator(const ImageView &static_image, Mode mode) const
{
    return Animator(*this, static_image, mode);
}

inline Animator Pipeline::animator(const ImageView &static_image, const AnimatorOptions &options) const
{
    return Animator(*this, static_image, options);
}

inline std::string version() { return mnm_version(); }

// Decode an image file as the mnm CLI does.
inline Image load_image(const std::string &path)
{
    mnm_image c{};
    check(mnm_image_load(path.c_str(), &c));
    return Image::adopt(c);
}

// Write an image file atomically, the format from the extension.
inline void save_image(const std::string &path, const ImageView &image)
{
    check(mnm_image_save(path.c_str(), image.c()));
}

} // namespace mnm

#endif // MNM_HPP
