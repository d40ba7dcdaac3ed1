#include "imaging.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "failure.hpp"

namespace mnm {
namespace {

constexpr double BOX_TOLERANCE = 1.0; // pixels a box may reach past the image edge
constexpr int LOSSY_QUALITY = 95;
const char RECOGNISED[] = "not a recognised image (PNG, JPEG, WebP, BMP, GIF or TIFF)";

std::string number(double value)
{
    char text[32];
    std::snprintf(text, sizeof text, "%g", value);
    return text;
}

enum class Format { Png, Jpeg, Webp, Bmp, Gif, Tiff, Unknown };

// The format from the first bytes: a file is decoded only as what its bytes say it is.
Format sniff(const std::vector<uint8_t> &b)
{
    auto starts = [&](const char *magic, size_t n, size_t at = 0) {
        return b.size() >= at + n && std::memcmp(b.data() + at, magic, n) == 0;
    };
    if (starts("\x89PNG\r\n\x1a\n", 8))
        return Format::Png;
    if (starts("\xff\xd8\xff", 3))
        return Format::Jpeg;
    if (starts("RIFF", 4) && starts("WEBP", 4, 8))
        return Format::Webp;
    if (starts("BM", 2))
        return Format::Bmp;
    if (starts("GIF87a", 6) || starts("GIF89a", 6))
        return Format::Gif;
    if (starts("II*\0", 4) || starts("MM\0*", 4))
        return Format::Tiff;
    return Format::Unknown;
}

const char *format_name(Format format)
{
    static const char *const names[] = {"PNG", "JPEG", "WEBP", "BMP", "GIF", "TIFF", "unknown"};
    return names[int(format)];
}

// The format a file's name claims (".png" -> PNG), Unknown when the suffix names none of the six.
Format claimed_format(const std::string &path)
{
    size_t dot = path.find_last_of('.'), slash = path.find_last_of('/');
    if (dot == std::string::npos || (slash != std::string::npos && dot < slash))
        return Format::Unknown;
    std::string ext = path.substr(dot);
    for (char &ch : ext)
        ch = char(std::tolower(static_cast<unsigned char>(ch)));
    static const std::pair<const char *, Format> suffixes[] = {
        {".png", Format::Png},  {".jpg", Format::Jpeg}, {".jpeg", Format::Jpeg}, {".webp", Format::Webp},
        {".bmp", Format::Bmp},  {".gif", Format::Gif},  {".tif", Format::Tiff},  {".tiff", Format::Tiff}};
    for (const auto &[suffix, format] : suffixes)
        if (ext == suffix)
            return format;
    return Format::Unknown;
}

// Width x height from the header where it is cheap to read (PNG, JPEG, GIF, BMP), else 0.
int64_t header_pixels(Format format, const std::vector<uint8_t> &b)
{
    auto be = [&](size_t at, int n) {
        uint32_t v = 0;
        for (int i = 0; i < n; ++i)
            v = v << 8 | b[at + size_t(i)];
        return int64_t(v);
    };
    auto le = [&](size_t at, int n) {
        uint32_t v = 0;
        for (int i = n - 1; i >= 0; --i)
            v = v << 8 | b[at + size_t(i)];
        return int64_t(v);
    };
    if (format == Format::Png && b.size() >= 24)
        return be(16, 4) * be(20, 4);
    if (format == Format::Gif && b.size() >= 10)
        return le(6, 2) * le(8, 2);
    if (format == Format::Bmp && b.size() >= 26)
        return std::llabs(int64_t(int32_t(le(18, 4)))) * std::llabs(int64_t(int32_t(le(22, 4))));
    if (format == Format::Jpeg) {
        for (size_t i = 2; i + 9 < b.size();) {
            if (b[i] != 0xff) {
                ++i;
                continue;
            }
            uint8_t marker = b[i + 1];
            bool sof = marker >= 0xc0 && marker <= 0xcf && marker != 0xc4 && marker != 0xc8 && marker != 0xcc;
            if (sof)
                return be(i + 5, 2) * be(i + 7, 2);
            if (marker == 0xd8 || marker == 0x01 || (marker >= 0xd0 && marker <= 0xd7) || marker == 0xff) {
                i += marker == 0xff ? 1 : 2;
                continue;
            }
            i += 2 + size_t(be(i + 2, 2));
        }
    }
    return 0;
}

std::vector<uint8_t> read_file(const std::string &path)
{
    struct stat info;
    if (stat(path.c_str(), &info) != 0)
        throw Failure(MNM_ERR_NOT_FOUND, path + ": image file not found");
    if (S_ISDIR(info.st_mode))
        runtime_error(path + ": is a folder, not an image file");
    std::ifstream in(path, std::ios::binary);
    if (!in)
        runtime_error(path + ": cannot read the file (" + std::strerror(errno) + ")");
    std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (in.bad())
        runtime_error(path + ": cannot read the file");
    if (bytes.empty())
        runtime_error(path + ": empty file (0 bytes), not an image");
    return bytes;
}

// Pillow's alpha_composite of a pixel over opaque white (its fixed-point formula), then RGB.
inline uint8_t over_white(unsigned value, unsigned alpha)
{
    uint32_t tmp = 128 * (value * alpha + 255 * (255 - alpha)) + (0x80 << 7);
    return uint8_t((((tmp >> 8) + tmp) >> 8) >> 7);
}

// A decoded OpenCV image (8 or 16 bits, 1, 3 or 4 channels in BGR order) -> RGB8.
Rgb to_rgb(const cv::Mat &decoded, const std::string &path)
{
    cv::Mat m = decoded;
    if (m.depth() == CV_16U) { // as mnm.imaging: 16-bit grey rounded (v / 257), 16-bit colour its high byte
        cv::Mat eight(m.rows, m.cols, CV_8UC(m.channels()));
        for (int y = 0; y < m.rows; ++y) {
            const uint16_t *src = m.ptr<uint16_t>(y);
            uint8_t *dst = eight.ptr<uint8_t>(y);
            for (int i = 0; i < m.cols * m.channels(); ++i)
                dst[i] = m.channels() == 1 ? uint8_t((uint32_t(src[i]) * 255 + 32767) / 65535) : uint8_t(src[i] >> 8);
        }
        m = eight;
    } else if (m.depth() != CV_8U) {
        runtime_error(path + ": unsupported pixel depth (only 8- and 16-bit images are read)");
    }
    Rgb out(m.cols, m.rows);
    for (int y = 0; y < m.rows; ++y) {
        const uint8_t *src = m.ptr<uint8_t>(y);
        uint8_t *dst = out.row(y);
        for (int x = 0; x < m.cols; ++x, dst += 3) {
            if (m.channels() == 1) {
                dst[0] = dst[1] = dst[2] = src[x];
            } else if (m.channels() == 3) {
                dst[0] = src[3 * x + 2], dst[1] = src[3 * x + 1], dst[2] = src[3 * x];
            } else if (m.channels() == 4) {
                unsigned a = src[4 * x + 3];
                dst[0] = over_white(src[4 * x + 2], a);
                dst[1] = over_white(src[4 * x + 1], a);
                dst[2] = over_white(src[4 * x], a);
            } else {
                runtime_error(path + ": unsupported number of channels (" + std::to_string(m.channels()) + ")");
            }
        }
    }
    return out;
}

} // namespace

Rgb load_image(const std::string &path)
{
    std::vector<uint8_t> bytes = read_file(path);
    Format format = sniff(bytes);
    if (format == Format::Unknown)
        runtime_error(path + ": " + RECOGNISED);
    // A name that claims one of the formats must be that format (a TIFF named .png is refused), as
    // mnm.imaging.open_image does.
    Format claimed = claimed_format(path);
    if (claimed != Format::Unknown && claimed != format) {
        std::string suffix = path.substr(path.find_last_of('.'));
        runtime_error(path + ": the file is " + format_name(format) + ", but its name says " + format_name(claimed) +
                      " (" + suffix + "); rename it or convert it to " + format_name(claimed));
    }
    int64_t pixels = header_pixels(format, bytes);
    if (pixels > MAX_PIXELS)
        runtime_error(path + ": image is " + with_commas(pixels) + " pixels, over the limit of " +
                      with_commas(MAX_PIXELS) + " pixels");
    // JPEG has no alpha: IMREAD_COLOR applies its EXIF orientation. The others are read unchanged,
    // to keep their alpha (composited over white) and their 16-bit values.
    int flags = format == Format::Jpeg ? cv::IMREAD_COLOR : cv::IMREAD_UNCHANGED;
    cv::Mat decoded;
    try {
        decoded = cv::imdecode(cv::Mat(1, int(bytes.size()), CV_8U, bytes.data()), flags);
    } catch (const cv::Exception &exc) {
        runtime_error(path + ": corrupt or truncated image (" + exc.msg + ")");
    }
    if (decoded.empty()) {
        if (format == Format::Gif)
            runtime_error(path + ": GIF is not decoded by this build of OpenCV; convert the image to PNG");
        runtime_error(path + ": corrupt or truncated image (OpenCV could not decode it)");
    }
    if (int64_t(decoded.cols) * decoded.rows > MAX_PIXELS)
        runtime_error(path + ": image is " + std::to_string(decoded.cols) + "x" + std::to_string(decoded.rows) +
                      ", over the limit of " + with_commas(MAX_PIXELS) + " pixels");
    return to_rgb(decoded, path);
}

void save_image(const std::string &path, const Rgb &image)
{
    size_t dot = path.find_last_of('.');
    size_t slash = path.find_last_of('/');
    std::string ext = dot == std::string::npos || (slash != std::string::npos && dot < slash) ? "" : path.substr(dot);
    for (char &ch : ext)
        ch = char(std::tolower(static_cast<unsigned char>(ch)));
    std::vector<int> params;
    if (ext == ".jpg" || ext == ".jpeg")
        params = {cv::IMWRITE_JPEG_QUALITY, LOSSY_QUALITY};
    else if (ext == ".webp")
        params = {cv::IMWRITE_WEBP_QUALITY, LOSSY_QUALITY};
    else if (ext != ".png" && ext != ".bmp" && ext != ".tif" && ext != ".tiff")
        argument_error(path + ": cannot tell the image format from the extension '" + ext +
                       "'; use .png, .jpg, .webp, .bmp or .tif");
    cv::Mat bgr(image.height, image.width, CV_8UC3);
    cv::cvtColor(cv::Mat(image.height, image.width, CV_8UC3, const_cast<uint8_t *>(image.pixels.data())), bgr,
                 cv::COLOR_RGB2BGR);
    std::vector<uint8_t> encoded;
    try {
        if (!cv::imencode(ext, bgr, encoded, params))
            runtime_error(path + ": OpenCV cannot encode " + ext + " here");
    } catch (const cv::Exception &exc) {
        runtime_error(path + ": cannot encode the image (" + exc.msg + ")");
    }
    // Atomic: a temporary file beside the target, flushed, then renamed over it.
    static std::atomic<unsigned> counter{0};
    std::string temporary = path + ".tmp-" + std::to_string(getpid()) + "-" + std::to_string(counter++);
    int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0)
        runtime_error(path + ": cannot write the image (" + std::strerror(errno) + ")");
    size_t done = 0;
    while (done < encoded.size()) {
        ssize_t n = ::write(fd, encoded.data() + done, encoded.size() - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        done += size_t(n);
    }
    int saved = errno;
    bool ok = done == encoded.size() && ::fsync(fd) == 0;
    saved = ok ? 0 : (errno ? errno : saved);
    ok = (::close(fd) == 0) && ok;
    if (!ok || ::rename(temporary.c_str(), path.c_str()) != 0) {
        saved = saved ? saved : errno;
        ::unlink(temporary.c_str());
        runtime_error(path + ": cannot write the image (" + std::strerror(saved) + ")");
    }
}

void validate_box(const Box &box, int width, int height, const std::string &source)
{
    double x = box[0], y = box[1], w = box[2], h = box[3];
    std::string shown = "(" + number(x) + ", " + number(y) + ", " + number(w) + ", " + number(h) + ")";
    for (double v : box)
        if (!std::isfinite(v))
            argument_error(source + ": box " + shown + " has a non-finite value");
    if (w <= 0 || h <= 0)
        argument_error(source + ": box " + shown + " has zero or negative width or height (x y w h)");
    if (x < 0 || y < 0)
        argument_error(source + ": box " + shown + " starts at a negative coordinate");
    if (w <= 1 && h <= 1 && std::max(width, height) > 2)
        argument_error(source + ": box " + shown + " looks like normalised 0-1 units; boxes must be in pixels (x y w h)");
    if (x + w > width + BOX_TOLERANCE || y + h > height + BOX_TOLERANCE)
        argument_error(source + ": box " + shown + " extends outside the " + std::to_string(width) + "x" +
                       std::to_string(height) + " image");
}

namespace {

// mnm.imaging.crop_resize: INTER_AREA when shrinking both ways, else INTER_LINEAR.
Rgb crop_resize(const Rgb &image, int x0, int y0, int x1, int y1, int size)
{
    if (!(0 <= x0 && x0 < x1 && x1 <= image.width && 0 <= y0 && y0 < y1 && y1 <= image.height))
        runtime_error("crop box is empty or outside the " + std::to_string(image.width) + "x" +
                      std::to_string(image.height) + " image");
    cv::Mat whole(image.height, image.width, CV_8UC3, const_cast<uint8_t *>(image.pixels.data()));
    cv::Mat crop = whole(cv::Rect(x0, y0, x1 - x0, y1 - y0));
    Rgb out(size, size);
    cv::Mat target(size, size, CV_8UC3, out.pixels.data());
    if (crop.cols == size && crop.rows == size) {
        crop.copyTo(target);
        return out;
    }
    bool shrink = crop.cols >= size && crop.rows >= size;
    cv::resize(crop, target, cv::Size(size, size), 0, 0, shrink ? cv::INTER_AREA : cv::INTER_LINEAR);
    return out;
}

} // namespace

Rgb prepare_pixels(const Rgb &image, int size, const std::optional<Box> &box, Fit fit, const std::string &source)
{
    int width = image.width, height = image.height;
    if (box) {
        // mnm.imaging.object_crop_box: a square of 1.5 x the larger side around the centre, clipped.
        validate_box(*box, width, height, source);
        double x = (*box)[0], y = (*box)[1], w = (*box)[2], h = (*box)[3];
        int half = std::max(1, int(std::max(w, h) * 0.75));
        int cx = int((2 * x + w) / 2), cy = int((2 * y + h) / 2);
        return crop_resize(image, std::max(0, cx - half), std::max(0, cy - half), std::min(width, cx + half),
                           std::min(height, cy + half), size);
    }
    if (fit == Fit::Squash)
        return pil_bilinear_resize(image, size, size);
    int side = std::min(width, height);
    int x0 = (width - side) / 2, y0 = (height - side) / 2;
    return crop_resize(image, x0, y0, x0 + side, y0 + side, size);
}

std::vector<float> to_model_input(const Rgb &image)
{
    size_t plane = size_t(image.width) * size_t(image.height);
    std::vector<float> chw(plane * 3);
    for (size_t i = 0; i < plane; ++i)
        for (size_t c = 0; c < 3; ++c) {
            float v = float(image.pixels[3 * i + c]);
            v /= 127.5f;
            v -= 1.0f;
            chw[c * plane + i] = v;
        }
    return chw;
}

Rgb to_uint8(const float *chw, int size)
{
    Rgb out(size, size);
    size_t plane = size_t(size) * size_t(size);
    for (size_t i = 0; i < plane; ++i)
        for (size_t c = 0; c < 3; ++c) {
            float scaled = (chw[c * plane + i] + 1.0f) * 127.5f;
            float rounded = std::nearbyint(scaled);
            out.pixels[3 * i + c] = uint8_t(rounded < 0.0f ? 0.0f : rounded > 255.0f ? 255.0f : rounded);
        }
    return out;
}

} // namespace mnm
