// Images: files in and out (OpenCV imgcodecs), and the one preprocessing of the Python runtime
// (mnm/imaging.py): object crop or centred square or squash, resized to S, scaled to [-1, 1].
#ifndef MNM_SRC_IMAGING_HPP
#define MNM_SRC_IMAGING_HPP

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace mnm {

constexpr int64_t MAX_PIXELS = 100000000; // largest image decoded or accepted: 100 megapixels

// An RGB8 image with packed rows (stride 3 * width).
struct Rgb {
    int width = 0;
    int height = 0;
    std::vector<uint8_t> pixels;

    Rgb() = default;
    Rgb(int w, int h) : width(w), height(h), pixels(size_t(w) * size_t(h) * 3) {}
    uint8_t *row(int y) { return pixels.data() + size_t(y) * size_t(width) * 3; }
    const uint8_t *row(int y) const { return pixels.data() + size_t(y) * size_t(width) * 3; }
};

using Box = std::array<double, 4>; // x, y, w, h in pixels

enum class Fit { Crop, Squash };

// Decode an image file (Failure: MNM_ERR_NOT_FOUND, MNM_ERR_RUNTIME).
Rgb load_image(const std::string &path);
// Encode by extension and write atomically (Failure: MNM_ERR_ARGUMENT, MNM_ERR_RUNTIME).
void save_image(const std::string &path, const Rgb &image);

// Refuses (MNM_ERR_ARGUMENT) a box that does not fit a width x height image (mnm.imaging.validate_box).
void validate_box(const Box &box, int width, int height, const std::string &source);

// The S x S uint8 reference as the model sees it: the object crop with a box, else by `fit`.
Rgb prepare_pixels(const Rgb &image, int size, const std::optional<Box> &box, Fit fit, const std::string &source);
// 3 x S x S float32 in [-1, 1] (v / 127.5 - 1), as mnm.imaging.to_model_input.
std::vector<float> to_model_input(const Rgb &image);
// 3 x S x S floats in [-1, 1] -> RGB8, rounded half to even and clipped, as mnm.imaging.to_uint8.
Rgb to_uint8(const float *chw, int size);

// Pillow's BILINEAR resize of an RGB8 image (its fixed-point two-pass resampler): the squash fit.
Rgb pil_bilinear_resize(const Rgb &image, int width, int height);

} // namespace mnm

#endif
