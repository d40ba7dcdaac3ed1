// The exported functions of mnm.h: argument checks, the growable structs, conversions to and from
// the caller's memory, handles, and every failure turned into a status and a per-thread message.
//
// Growable structs: the caller's struct is copied over a default-initialised one, struct_size
// bytes of it, so fields an older app does not know keep their defaults. New fields are appended
// at 8-byte aligned offsets, so that none falls in an older layout's trailing padding.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <map>
#include <new>
#include <tuple>

#include <opencv2/core.hpp>

#include "failure.hpp"
#include "handles.hpp"
#include "imaging.hpp"
#include "onnxruntime.hpp"
#include "pipeline.hpp"

using namespace mnm;

namespace {

// ---------------------------------------------------------------- the calling thread's message

thread_local std::string error_text; // freed by the C++ runtime when the thread exits
thread_local const char *error_view = "";
const char OUT_OF_MEMORY[] = "out of memory (the error message could not be kept)";

void set_error(const char *message)
{
    try {
        error_text = message;
        error_view = error_text.c_str();
    } catch (...) {
        error_view = OUT_OF_MEMORY;
    }
}

// Runs one API call: MNM_OK and "" on success, else the failure's status and message.
template <class Body> mnm_status guarded(Body &&body)
{
    try {
        body();
        set_error("");
        return MNM_OK;
    } catch (const Failure &failure) {
        set_error(failure.what());
        return failure.status();
    } catch (const std::bad_alloc &) {
        set_error("out of memory");
        return MNM_ERR_MEMORY;
    } catch (const cv::Exception &exc) {
        set_error(("internal error (please report it): OpenCV: " + exc.msg).c_str());
    } catch (const std::exception &exc) {
        set_error((std::string("internal error (please report it): ") + exc.what()).c_str());
    } catch (...) {
        set_error("internal error (please report it): an unknown exception");
    }
    return MNM_ERR_INTERNAL;
}

template <class T> void require(const T *pointer, const std::string &what)
{
    if (pointer == nullptr)
        argument_error(what + " is NULL");
}

// The caller's struct over the defaults, struct_size bytes of it (see the file comment).
template <class T> T read_struct(const T *given, const T &defaults, const char *what, const char *macro)
{
    T copy = defaults;
    if (given == nullptr)
        return copy;
    size_t size = given->struct_size;
    if (size < sizeof(size_t))
        argument_error(std::string(what) + ": struct_size is " + std::to_string(size) + "; initialise the struct with " +
                       macro);
    if (size > sizeof(T))
        argument_error(std::string(what) + ": struct_size " + std::to_string(size) + " is larger than this library's " +
                       std::to_string(sizeof(T)) + " bytes: the app was built against a newer mnm.h than libmnm " +
                       MNM_VERSION_STRING + " (upgrade libmnm)");
    std::memcpy(static_cast<void *>(&copy), given, size);
    return copy;
}

std::string text(const char *pointer, const std::string &what)
{
    require(pointer, what);
    return pointer;
}

std::string text_or(const char *pointer, const char *fallback) { return pointer && *pointer ? pointer : fallback; }

uint64_t number(const void *handle, const char *what)
{
    require(handle, what);
    return uint64_t(reinterpret_cast<uintptr_t>(handle));
}

// ---------------------------------------------------------------- images in and out

// Bytes an image of this geometry spans; refuses one that does not fit its buffer.
size_t geometry(const mnm_image &image, const std::string &what)
{
    int64_t w = image.width, h = image.height, stride = image.stride;
    if (w <= 0 || h <= 0)
        argument_error(what + ": width and height must be positive, got " + std::to_string(w) + "x" + std::to_string(h));
    if (w * h > MAX_PIXELS)
        argument_error(what + ": " + std::to_string(w) + "x" + std::to_string(h) + " is over the limit of " +
                       with_commas(MAX_PIXELS) + " pixels");
    if (stride < 3 * w)
        argument_error(what + ": stride " + std::to_string(stride) + " is less than 3 x width (" +
                       std::to_string(3 * w) + " bytes of RGB per row)");
    uint64_t needed = uint64_t(stride) * uint64_t(h - 1) + uint64_t(3 * w);
    if (image.size < needed)
        argument_error(what + ": buffer size " + std::to_string(image.size) + " is too small for " + std::to_string(w) +
                       "x" + std::to_string(h) + " RGB with stride " + std::to_string(stride) + " (" +
                       std::to_string(needed) + " bytes)");
    return size_t(needed);
}

Rgb copy_in(const mnm_image *image, const std::string &what)
{
    require(image, what);
    require(image->data, what + ": data");
    geometry(*image, what);
    Rgb copy(image->width, image->height);
    for (int y = 0; y < image->height; ++y)
        std::memcpy(copy.row(y), image->data + size_t(y) * size_t(image->stride), size_t(image->width) * 3);
    return copy;
}

// Refuses, before any work, an output that cannot take a width x height result.
void check_output(const mnm_image *out, int width, int height, const std::string &what)
{
    require(out, what);
    if (out->data == nullptr)
        return;
    if (out->width != width || out->height != height)
        argument_error(what + ": the result is " + std::to_string(width) + "x" + std::to_string(height) +
                       " but the buffer is " + std::to_string(out->width) + "x" + std::to_string(out->height) +
                       " (leave data NULL to have the library allocate it)");
    geometry(*out, what);
}

// Every image into its output (caller's buffer, or malloc'd); on failure nothing allocated is kept.
void put_images(const std::vector<mnm_image *> &outs, const std::vector<const Rgb *> &images)
{
    std::vector<mnm_image *> allocated;
    for (size_t i = 0; i < outs.size(); ++i) {
        mnm_image &out = *outs[i];
        const Rgb &image = *images[i];
        if (out.data == nullptr) {
            size_t size = size_t(image.width) * size_t(image.height) * 3;
            void *memory = std::malloc(size);
            if (memory == nullptr) {
                for (mnm_image *done : allocated)
                    mnm_image_free(done);
                throw Failure(MNM_ERR_MEMORY, "cannot allocate a " + std::to_string(image.width) + "x" +
                                                  std::to_string(image.height) + " image");
            }
            out = mnm_image{static_cast<uint8_t *>(memory), size, image.width, image.height, 3 * image.width, memory};
            allocated.push_back(&out);
        }
        for (int y = 0; y < image.height; ++y)
            std::memcpy(out.data + size_t(y) * size_t(out.stride), image.row(y), size_t(image.width) * 3);
    }
}

// ---------------------------------------------------------------- requests

struct OpenPipeline {
    std::unique_ptr<Pipeline> pipeline;
    std::vector<std::string> graph_names;
    std::vector<const char *> graphs;
    std::string bundle, backend, onnxruntime;
};

struct OpenAnimator {
    std::unique_ptr<Animator> animator;
};

std::shared_ptr<OpenPipeline> open_pipeline(const mnm_pipeline *pipeline)
{
    return std::static_pointer_cast<OpenPipeline>(use_handle(number(pipeline, "pipeline"), HandleKind::Pipeline));
}

// The int a C caller stored in an enum field: C allows any int there, a C++ load of an enum
// outside its values is undefined, so it is read as the int it is.
template <class Enum> int int_of(const Enum &field)
{
    static_assert(sizeof(Enum) == sizeof(int), "mnm.h enums are int-sized");
    int value;
    std::memcpy(&value, &field, sizeof value);
    return value;
}

Mode mode_of(int value, const Pipeline &pipeline)
{
    if (value != MNM_MODE_CODE && value != MNM_MODE_FEATURE)
        argument_error("mode must be MNM_MODE_CODE (0) or MNM_MODE_FEATURE (1), got " + std::to_string(value));
    Mode mode = value == MNM_MODE_CODE ? Mode::Code : Mode::Feature;
    pipeline.require_mode(mode);
    return mode;
}

Stitch stitch_of(int value)
{
    if (value < MNM_STITCH_NONE || value > MNM_STITCH_FOREGROUND)
        argument_error("stitch must be MNM_STITCH_NONE, _BACKGROUND or _FOREGROUND (0-2), got " + std::to_string(value));
    return value == MNM_STITCH_NONE ? Stitch::None : value == MNM_STITCH_BACKGROUND ? Stitch::Background : Stitch::Foreground;
}

std::optional<Box> box_of(const double *box)
{
    if (box == nullptr)
        return std::nullopt;
    return Box{box[0], box[1], box[2], box[3]};
}

// The caller's images of one call, each copied once: one buffer given as both the pose and the
// shape is one reference (what feature mode asks for).
class CallImages {
public:
    std::pair<std::shared_ptr<const Rgb>, std::string> get(const mnm_image *image, const std::string &what)
    {
        require(image, what);
        char key[160];
        std::snprintf(key, sizeof key, "buffer:%p:%d:%d:%d:%zu", static_cast<void *>(image->data), image->width,
                      image->height, image->stride, image->size);
        auto &copy = copies_[key];
        if (!copy)
            copy = std::make_shared<const Rgb>(copy_in(image, what));
        return {copy, key};
    }

private:
    std::map<std::string, std::shared_ptr<const Rgb>> copies_;
};

// An mnm_factor -> a Factor (null when empty).
FactorPtr factor_of(const mnm_factor &factor, Kind kind, CallImages &images, const std::string &label)
{
    std::string name = kind_name(kind);
    if (factor.spec != nullptr && factor.image != nullptr)
        argument_error(name + ": give a spec or an image, not both");
    if (factor.box != nullptr && factor.image == nullptr)
        argument_error(name + ": a box needs an image");
    if (factor.image != nullptr) {
        auto image = images.get(factor.image, name);
        return image_factor(image.first, box_of(factor.box), label.empty() ? "image" : label, image.second, kind);
    }
    if (factor.spec != nullptr)
        return parse_spec(factor.spec, kind);
    return nullptr;
}

std::vector<FactorPtr> factor_list(const mnm_factor *factors, int32_t count, Kind kind, CallImages &images)
{
    std::string name = kind_name(kind);
    if (count < 0)
        argument_error("n_" + name + " must be 0 or more, got " + std::to_string(count));
    if (count > 0 && factors == nullptr)
        argument_error(name + " is NULL but n_" + name + " is " + std::to_string(count));
    std::vector<FactorPtr> list;
    for (int32_t i = 0; i < count; ++i) {
        FactorPtr f = factor_of(factors[i], kind, images, name + " " + std::to_string(i + 1));
        list.push_back(f || kind == Kind::Shape ? f : random_factor());
    }
    return list;
}

// A caller's row-major rows x cols floats, all finite.
const float *floats(const float *pointer, size_t rows, size_t cols, const std::string &what)
{
    require(pointer, what);
    for (size_t i = 0; i < rows * cols; ++i)
        if (!std::isfinite(pointer[i]))
            argument_error(what + ": contains NaN or infinity");
    return pointer;
}

const mnm_pipeline_options OPTIONS_DEFAULTS = MNM_PIPELINE_OPTIONS_INIT;
const mnm_mix_request MIX_DEFAULTS = MNM_MIX_REQUEST_INIT;
const mnm_grid_request GRID_DEFAULTS = MNM_GRID_REQUEST_INIT;
const mnm_codes CODES_DEFAULTS = MNM_CODES_INIT;
const mnm_generate_request GENERATE_DEFAULTS = MNM_GENERATE_REQUEST_INIT;
const mnm_animator_options ANIMATOR_DEFAULTS = MNM_ANIMATOR_OPTIONS_INIT;
const mnm_info INFO_DEFAULTS = MNM_INFO_INIT;

} // namespace

// ---------------------------------------------------------------- the library

MNM_API const char *mnm_version(void) { return MNM_VERSION_STRING; }

MNM_API const char *mnm_last_error(void) { return error_view; }

MNM_API const char *mnm_status_name(mnm_status status)
{
    switch (int_of(status)) {
    case MNM_OK: return "MNM_OK";
    case MNM_ERR_ARGUMENT: return "MNM_ERR_ARGUMENT";
    case MNM_ERR_NOT_FOUND: return "MNM_ERR_NOT_FOUND";
    case MNM_ERR_BUNDLE: return "MNM_ERR_BUNDLE";
    case MNM_ERR_UNSUPPORTED: return "MNM_ERR_UNSUPPORTED";
    case MNM_ERR_BACKEND: return "MNM_ERR_BACKEND";
    case MNM_ERR_CLOSED: return "MNM_ERR_CLOSED";
    case MNM_ERR_RUNTIME: return "MNM_ERR_RUNTIME";
    case MNM_ERR_MEMORY: return "MNM_ERR_MEMORY";
    case MNM_ERR_INTERNAL: return "MNM_ERR_INTERNAL";
    }
    return "MNM_ERR_UNKNOWN";
}

MNM_API void mnm_image_free(mnm_image *image)
{
    if (image == nullptr || image->owned == nullptr)
        return;
    std::free(image->owned);
    std::memset(image, 0, sizeof *image);
}

// ---------------------------------------------------------------- pipelines

MNM_API mnm_status mnm_pipeline_open(const char *bundle, const mnm_pipeline_options *options, mnm_pipeline **out)
{
    return guarded([&] {
        std::string path = text(bundle, "bundle");
        require(out, "out");
        mnm_pipeline_options o = read_struct(options, OPTIONS_DEFAULTS, "options", "MNM_PIPELINE_OPTIONS_INIT");
        BackendOptions backend;
        backend.name = text_or(o.backend, "auto");
        backend.precision = text_or(o.precision, "auto");
        for (auto [name, value] : {std::pair{"threads", o.threads}, std::pair{"max_batch", o.max_batch}})
            if (value < 0)
                argument_error(std::string("options.") + name + " must be 0 (the default) or more, got " +
                               std::to_string(value));
        backend.threads = o.threads;
        backend.max_batch = o.max_batch ? o.max_batch : 16;
        std::string fit = text_or(o.fit, "crop");
        if (fit != "crop" && fit != "squash")
            argument_error("options.fit must be one of crop, squash, got '" + fit + "'");
        // Names are checked before the bundle is read (that hashes every file): a typo fails at once.
        const char *const backends[] = {"auto", "ort-cpu", "ort-cuda", "ort-trt", "tensorrt"};
        if (std::find(std::begin(backends), std::end(backends), backend.name) == std::end(backends))
            argument_error("unknown backend '" + backend.name + "'; choose auto, ort-cpu, ort-cuda, ort-trt, tensorrt");
        check_precision_name(backend.precision, "options.precision");
        if (onnxruntime_inherited())
            throw Failure(MNM_ERR_BACKEND, "ONNX Runtime was started by the parent process before fork(): a forked "
                                           "child cannot run models (exec a new process, or fork before opening "
                                           "pipelines)");
        Bundle opened = Bundle::open(path);
        opened.check_precision(backend.precision);
        const OrtLibrary &ort = onnxruntime(o.onnxruntime_library);
        auto state = std::make_shared<OpenPipeline>();
        state->pipeline = std::make_unique<Pipeline>(std::move(opened), backend, fit == "crop" ? Fit::Crop : Fit::Squash, ort);
        const Pipeline &p = *state->pipeline;
        for (const auto &item : p.bundle().graphs())
            state->graph_names.push_back(item.first);
        for (const std::string &name : state->graph_names)
            state->graphs.push_back(name.c_str());
        char *absolute = realpath(path.c_str(), nullptr);
        state->bundle = absolute ? absolute : path;
        std::free(absolute);
        state->backend = p.description();
        state->onnxruntime = ort.path;
        *out = reinterpret_cast<mnm_pipeline *>(uintptr_t(add_handle(HandleKind::Pipeline, state)));
    });
}

MNM_API mnm_status mnm_pipeline_close(mnm_pipeline *pipeline)
{
    return guarded([&] {
        if (pipeline != nullptr)
            close_handle(number(pipeline, "pipeline"), HandleKind::Pipeline);
    });
}

MNM_API mnm_status mnm_pipeline_info(mnm_pipeline *pipeline, mnm_info *out)
{
    return guarded([&] {
        auto state = open_pipeline(pipeline);
        require(out, "out");
        mnm_info info = read_struct(out, INFO_DEFAULTS, "out", "MNM_INFO_INIT");
        const Pipeline &p = *state->pipeline;
        const ModelConfig &cfg = p.config();
        info.image_size = cfg.image_size;
        info.z_dim = cfg.z_dim;
        info.b_dim = cfg.b_dim();
        info.p_dim = cfg.n_parent;
        info.c_dim = cfg.n_child;
        info.has_code_mode = p.bundle().has_mode("code");
        info.has_feature_mode = p.bundle().has_mode("feature");
        info.graph_count = int32_t(state->graphs.size());
        info.graphs = state->graphs.data();
        info.bundle = state->bundle.c_str();
        info.backend = state->backend.c_str();
        info.version = MNM_VERSION_STRING;
        info.onnxruntime_library = state->onnxruntime.c_str();
        std::memcpy(static_cast<void *>(out), &info, out->struct_size);
    });
}

// ---------------------------------------------------------------- mix and match

MNM_API mnm_status mnm_mix(mnm_pipeline *pipeline, const mnm_mix_request *request, mnm_image *out)
{
    return guarded([&] {
        require(request, "request");
        mnm_mix_request r = read_struct(request, MIX_DEFAULTS, "request", "MNM_MIX_REQUEST_INIT");
        auto state = open_pipeline(pipeline);
        Pipeline &p = *state->pipeline;
        int s = p.config().image_size;
        check_output(out, s, s, "out");
        Mode mode = mode_of(int_of(r.mode), p);
        Stitch stitch = stitch_of(int_of(r.stitch));
        CallImages images;
        MixFactors mix{factor_of(r.background, Kind::Background, images, ""), factor_of(r.pose, Kind::Pose, images, ""),
                       factor_of(r.shape, Kind::Shape, images, ""), factor_of(r.texture, Kind::Texture, images, "")};
        for (FactorPtr *f : {&mix.background, &mix.pose, &mix.texture})
            if (!*f)
                *f = random_factor();
        std::vector<Rgb> result = p.render({mix}, mode, r.seed, stitch);
        put_images({out}, {&result[0]});
    });
}

MNM_API mnm_status mnm_grid(mnm_pipeline *pipeline, const mnm_grid_request *request, mnm_image *image, mnm_image *cells)
{
    return guarded([&] {
        require(request, "request");
        mnm_grid_request r = read_struct(request, GRID_DEFAULTS, "request", "MNM_GRID_REQUEST_INIT");
        require(image, "image");
        auto state = open_pipeline(pipeline);
        Pipeline &p = *state->pipeline;
        int s = p.config().image_size;
        Mode mode = mode_of(int_of(r.mode), p);
        Stitch stitch = stitch_of(int_of(r.stitch));
        CallImages images;
        auto background = factor_list(r.background, r.n_background, Kind::Background, images);
        auto pose = factor_list(r.pose, r.n_pose, Kind::Pose, images);
        auto shape = factor_list(r.shape, r.n_shape, Kind::Shape, images);
        auto texture = factor_list(r.texture, r.n_texture, Kind::Texture, images);
        size_t n = std::max<size_t>(1, background.size()) * std::max<size_t>(1, pose.size()) *
                   std::max<size_t>(1, shape.size()) * std::max<size_t>(1, texture.size());
        std::vector<mnm_image *> outs = {image};
        if (image->data != nullptr)
            geometry(*image, "image"); // its size is known only once drawn: checked again then
        if (cells != nullptr)
            for (size_t i = 0; i < n; ++i) {
                check_output(&cells[i], s, s, "cells[" + std::to_string(i) + "]");
                outs.push_back(&cells[i]);
            }
        GridResult grid = p.grid(background, pose, shape, texture, mode, r.seed, stitch);
        check_output(image, grid.image.width, grid.image.height, "image");
        std::vector<const Rgb *> results = {&grid.image};
        for (size_t i = 0; cells != nullptr && i < n; ++i)
            results.push_back(&grid.cells[i]);
        put_images(outs, results);
    });
}

MNM_API mnm_status mnm_encode(mnm_pipeline *pipeline, const mnm_image *images, mnm_codes *codes)
{
    return guarded([&] {
        require(codes, "codes");
        mnm_codes c = read_struct(codes, CODES_DEFAULTS, "codes", "MNM_CODES_INIT");
        require(images, "images");
        if (c.count <= 0)
            argument_error("codes.count must be positive, got " + std::to_string(c.count));
        if (!c.z && !c.b && !c.p && !c.c)
            argument_error("codes: z, b, p and c are all NULL, nothing to compute");
        auto state = open_pipeline(pipeline);
        CallImages copies;
        std::vector<std::shared_ptr<const Rgb>> refs;
        for (int32_t i = 0; i < c.count; ++i)
            refs.push_back(copies.get(&images[i], "images[" + std::to_string(i) + "]").first);
        EncodedCodes result = state->pipeline->encode(refs, c.z, c.b, c.p, c.c);
        for (auto [into, from] : {std::pair{c.z, &result.z}, std::pair{c.b, &result.b}, std::pair{c.p, &result.p},
                                  std::pair{c.c, &result.c}})
            if (into)
                std::memcpy(into, from->data(), from->size() * sizeof(float));
    });
}

MNM_API mnm_status mnm_generate(mnm_pipeline *pipeline, const mnm_generate_request *request, mnm_image *out)
{
    return guarded([&] {
        require(request, "request");
        mnm_generate_request r = read_struct(request, GENERATE_DEFAULTS, "request", "MNM_GENERATE_REQUEST_INIT");
        require(out, "out");
        if (r.count <= 0)
            argument_error("request.count must be positive, got " + std::to_string(r.count));
        auto state = open_pipeline(pipeline);
        Pipeline &p = *state->pipeline;
        const ModelConfig &cfg = p.config();
        std::vector<mnm_image *> outs;
        for (int32_t i = 0; i < r.count; ++i) {
            check_output(&out[i], cfg.image_size, cfg.image_size, "out[" + std::to_string(i) + "]");
            outs.push_back(&out[i]);
        }
        size_t n = size_t(r.count);
        const float *z_bg = floats(r.z_bg, n, size_t(cfg.z_dim), "request.z_bg"); // checked in this order
        const float *b = floats(r.b, n, size_t(cfg.b_dim()), "request.b");
        const float *z_pose = floats(r.z_pose, n, size_t(cfg.z_dim), "request.z_pose");
        const float *pp = floats(r.p, n, size_t(cfg.n_parent), "request.p");
        const float *c = floats(r.c, n, size_t(cfg.n_child), "request.c");
        std::vector<Rgb> images = p.generate(r.count, z_bg, b, z_pose, pp, c);
        std::vector<const Rgb *> results;
        for (const Rgb &image : images)
            results.push_back(&image);
        put_images(outs, results);
    });
}

// ---------------------------------------------------------------- animation

MNM_API mnm_status mnm_animator_open(mnm_pipeline *pipeline, const mnm_image *static_image,
                                     const mnm_animator_options *options, mnm_animator **out)
{
    return guarded([&] {
        require(out, "out");
        mnm_animator_options o = read_struct(options, ANIMATOR_DEFAULTS, "options", "MNM_ANIMATOR_OPTIONS_INIT");
        uint64_t owner = number(pipeline, "pipeline");
        auto state = open_pipeline(pipeline);
        Mode mode = mode_of(int_of(o.mode), *state->pipeline);
        Rgb image = copy_in(static_image, "static_image");
        auto animator = std::make_shared<OpenAnimator>();
        animator->animator = std::make_unique<Animator>(*state->pipeline, image, mode, box_of(o.static_box),
                                                        box_of(o.frame_box));
        *out = reinterpret_cast<mnm_animator *>(uintptr_t(add_handle(HandleKind::Animator, animator, owner)));
    });
}

MNM_API mnm_status mnm_animator_frame(mnm_animator *animator, const mnm_image *frame, mnm_image *out)
{
    return guarded([&] {
        uint64_t owner = 0;
        auto state = std::static_pointer_cast<OpenAnimator>(
            use_handle(number(animator, "animator"), HandleKind::Animator, &owner));
        std::shared_ptr<OpenPipeline> pipeline; // held for the call: the animator runs on its sessions
        try {
            pipeline = std::static_pointer_cast<OpenPipeline>(use_handle(owner, HandleKind::Pipeline));
        } catch (const Failure &) {
            throw Failure(MNM_ERR_CLOSED, "the animator's pipeline was closed");
        }
        int s = pipeline->pipeline->config().image_size;
        check_output(out, s, s, "out");
        Rgb image = state->animator->frame(copy_in(frame, "frame"));
        put_images({out}, {&image});
    });
}

MNM_API mnm_status mnm_animator_close(mnm_animator *animator)
{
    return guarded([&] {
        if (animator != nullptr)
            close_handle(number(animator, "animator"), HandleKind::Animator);
    });
}

// ---------------------------------------------------------------- images

MNM_API mnm_status mnm_image_load(const char *path, mnm_image *out)
{
    return guarded([&] {
        std::string name = text(path, "path");
        require(out, "out");
        Rgb image = load_image(name);
        out->data = nullptr;
        put_images({out}, {&image});
    });
}

MNM_API mnm_status mnm_image_save(const char *path, const mnm_image *image)
{
    return guarded([&] {
        std::string name = text(path, "path");
        save_image(name, copy_in(image, "image"));
    });
}
