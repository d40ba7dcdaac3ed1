// Pillow's Image.resize(..., BILINEAR) for 8-bit images, reproduced from its resampler
// (libImaging/Resample.c): a triangle filter widened by the scale when shrinking, coefficients
// normalised then rounded to 22-bit fixed point, a horizontal pass then a vertical one, each
// rounded and clipped to 8 bits. Same arithmetic, so the same bytes as the Python runtime.
#include <cmath>

#include "imaging.hpp"

namespace mnm {
namespace {

constexpr int PRECISION_BITS = 32 - 8 - 2;

struct Coefficients {
    int ksize = 0;
    std::vector<int> bounds;  // per output pixel: first input pixel, count
    std::vector<int32_t> kk; // per output pixel: ksize fixed-point weights
};

Coefficients precompute(int in_size, int out_size)
{
    double scale = double(in_size) / out_size;
    double filterscale = scale < 1.0 ? 1.0 : scale;
    double support = 1.0 * filterscale;
    Coefficients c;
    c.ksize = int(std::ceil(support)) * 2 + 1;
    c.bounds.resize(size_t(out_size) * 2);
    c.kk.assign(size_t(out_size) * size_t(c.ksize), 0);
    std::vector<double> k(size_t(c.ksize));
    for (int xx = 0; xx < out_size; ++xx) {
        double center = (xx + 0.5) * scale;
        double ww = 0.0, ss = 1.0 / filterscale;
        int xmin = int(center - support + 0.5);
        if (xmin < 0)
            xmin = 0;
        int xmax = int(center + support + 0.5);
        if (xmax > in_size)
            xmax = in_size;
        xmax -= xmin;
        for (int x = 0; x < xmax; ++x) {
            double w = std::fabs((x + xmin - center + 0.5) * ss);
            w = w < 1.0 ? 1.0 - w : 0.0;
            k[size_t(x)] = w;
            ww += w;
        }
        for (int x = 0; x < xmax; ++x) {
            double v = ww != 0.0 ? k[size_t(x)] / ww : k[size_t(x)];
            c.kk[size_t(xx) * size_t(c.ksize) + size_t(x)] =
                v < 0 ? int32_t(-0.5 + v * (1 << PRECISION_BITS)) : int32_t(0.5 + v * (1 << PRECISION_BITS));
        }
        c.bounds[size_t(xx) * 2] = xmin;
        c.bounds[size_t(xx) * 2 + 1] = xmax;
    }
    return c;
}

inline uint8_t clip8(int64_t in)
{
    if (in >= (int64_t(1) << PRECISION_BITS << 8))
        return 255;
    if (in <= 0)
        return 0;
    return uint8_t(in >> PRECISION_BITS);
}

Rgb horizontal(const Rgb &in, int width)
{
    Coefficients c = precompute(in.width, width);
    Rgb out(width, in.height);
    for (int y = 0; y < in.height; ++y) {
        const uint8_t *src = in.row(y);
        uint8_t *dst = out.row(y);
        for (int xx = 0; xx < width; ++xx) {
            int xmin = c.bounds[size_t(xx) * 2], xmax = c.bounds[size_t(xx) * 2 + 1];
            const int32_t *k = &c.kk[size_t(xx) * size_t(c.ksize)];
            for (int ch = 0; ch < 3; ++ch) {
                int64_t ss = int64_t(1) << (PRECISION_BITS - 1);
                for (int x = 0; x < xmax; ++x)
                    ss += int64_t(src[(x + xmin) * 3 + ch]) * k[x];
                dst[xx * 3 + ch] = clip8(ss);
            }
        }
    }
    return out;
}

Rgb vertical(const Rgb &in, int height)
{
    Coefficients c = precompute(in.height, height);
    Rgb out(in.width, height);
    for (int yy = 0; yy < height; ++yy) {
        int ymin = c.bounds[size_t(yy) * 2], ymax = c.bounds[size_t(yy) * 2 + 1];
        const int32_t *k = &c.kk[size_t(yy) * size_t(c.ksize)];
        uint8_t *dst = out.row(yy);
        for (int i = 0; i < in.width * 3; ++i) {
            int64_t ss = int64_t(1) << (PRECISION_BITS - 1);
            for (int y = 0; y < ymax; ++y)
                ss += int64_t(in.row(y + ymin)[i]) * k[y];
            dst[i] = clip8(ss);
        }
    }
    return out;
}

} // namespace

Rgb pil_bilinear_resize(const Rgb &image, int width, int height)
{
    Rgb out = width != image.width ? horizontal(image, width) : image;
    return height != image.height ? vertical(out, height) : out;
}

} // namespace mnm
