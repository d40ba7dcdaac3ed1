// mnm.hpp, the C++ wrapper: exceptions from status codes, owning and borrowed images, RAII handles,
// and each method against the C API's meaning (a grid cell is the mix of its factors, generating
// from encoded codes is the mix of the references).
//
//   hpp_test BUNDLE WORKDIR
//
// Prints the number of checks; exits 1 naming each failed one.
#include <cstdio>
#include <iostream>
#include <string>
#include <utility>
#include <vector>

#include "mnm.hpp"

namespace {

int checks = 0, failures = 0;

void check_that(bool ok, int line, const char *what)
{
    ++checks;
    if (!ok) {
        ++failures;
        std::cerr << "line " << line << ": failed: " << what << "\n";
    }
}
#define CHECK(condition) check_that((condition), __LINE__, #condition)

// Runs `call`, which must throw mnm::Error with `status` and a message containing `words`.
template <typename Call> void expect_error(Call call, mnm_status status, const std::string &words, int line)
{
    try {
        call();
        check_that(false, line, "no exception");
    } catch (const mnm::Error &error) {
        check_that(error.status() == status && std::string(error.what()).find(words) != std::string::npos, line,
                   error.what());
    }
}
#define EXPECT_ERROR(call, status, words) expect_error([&] { call; }, status, words, __LINE__)

// A w x h picture in a buffer whose rows are `pad` bytes longer: what a cv::Mat ROI looks like.
std::vector<uint8_t> padded_picture(int w, int h, int pad, int seed)
{
    std::vector<uint8_t> data(size_t(3 * w + pad) * size_t(h), 0xCD);
    for (int y = 0; y < h; ++y)
        for (int x = 0; x < w; ++x)
            for (int k = 0; k < 3; ++k)
                data[size_t(y) * size_t(3 * w + pad) + size_t(3 * x + k)] = uint8_t(x * 5 + y * (k + 2) + 60 * seed);
    return data;
}

} // namespace

int main(int argc, char **argv)
{
    if (argc != 3) {
        std::cerr << "usage: hpp_test BUNDLE WORKDIR\n";
        return 2;
    }
    const std::string bundle = argv[1], work = argv[2];
    CHECK(mnm::version() == MNM_VERSION_STRING);
    EXPECT_ERROR(mnm::Pipeline("/nonexistent/bundle"), MNM_ERR_NOT_FOUND, "bundle folder not found");
    mnm::Options options;
    options.backend = "warp-drive";
    EXPECT_ERROR(mnm::Pipeline(bundle, options), MNM_ERR_ARGUMENT, "unknown backend");
    options.backend = "ort-cpu";
    options.fit = "stretch";
    EXPECT_ERROR(mnm::Pipeline(bundle, options), MNM_ERR_ARGUMENT, "options.fit must be one of crop, squash");

    mnm::Pipeline pipe(bundle, mnm::Options{"ort-cpu", 1, 8, "auto", "crop", ""});
    const mnm::Info &info = pipe.info();
    CHECK(info.image_size == 32 && info.code_mode && info.feature_mode && info.graphs.size() == 8);
    CHECK(info.backend.rfind("ort-cpu", 0) == 0 && info.version == MNM_VERSION_STRING && !info.bundle.empty());
    CHECK(info.onnxruntime_library.find("libonnxruntime") != std::string::npos);

    // fit: a reference without a box is squashed whole, not cropped to its centred square.
    mnm::Options squash;
    squash.fit = "squash";
    mnm::Pipeline squashing(bundle, squash);

    // Borrowed pixels with padded rows give what the same pixels packed give.
    std::vector<uint8_t> a = padded_picture(70, 50, 9, 1), b = padded_picture(45, 60, 0, 2);
    mnm::ImageView strided(a.data(), 70, 50, 3 * 70 + 9);
    mnm::Image packed(70, 50);
    for (int y = 0; y < 50; ++y)
        std::copy_n(a.data() + size_t(y) * (3 * 70 + 9), 3 * 70, packed.data() + size_t(y) * size_t(packed.stride()));
    mnm::ImageView other(b.data(), 45, 60);
    mnm::Image from_strided = pipe.mix(strided, other, other, strided);
    CHECK(from_strided == pipe.mix(packed, other, other, packed));
    CHECK(from_strided.width() == 32 && from_strided.height() == 32 && from_strided.stride() == 96);
    CHECK(from_strided.size() == 32 * 32 * 3);
    CHECK(!(from_strided == pipe.mix(strided, other, other, "code:5")));
    CHECK(!(squashing.mix(strided, other, other, strided) == from_strided));
    mnm::Image boxed = pipe.mix(mnm::Factor(strided).box(5, 5, 30, 30), other, other, strided);
    CHECK(!(boxed == from_strided));
    EXPECT_ERROR(pipe.mix(mnm::Factor(strided).box(60, 40, 30, 30), other, other, strided), MNM_ERR_ARGUMENT,
                 "extends outside");
    EXPECT_ERROR(pipe.mix(mnm::ImageView(a.data(), 70, 50, 3 * 70 + 9, 100), other, other, strided), MNM_ERR_ARGUMENT,
                 "buffer size 100 is too small");
    EXPECT_ERROR(pipe.mix(strided, other, "code:1", strided, mnm::Mode::Feature), MNM_ERR_RUNTIME,
                 "shape and pose come from one image");
    CHECK(pipe.mix(strided, other, mnm::Factor(), strided, mnm::Mode::Feature) ==
          pipe.mix(strided, other, other, strided, mnm::Mode::Feature));
    mnm::Image stitched = pipe.mix(strided, other, other, strided, mnm::Mode::Code, 0, mnm::Stitch::Background);
    CHECK(!(stitched == from_strided));

    // A grid's cells are the mixes of their factors, texture fastest.
    std::vector<mnm::Factor> backgrounds{strided, other}, textures{"code:1", "code:2", strided};
    mnm::Grid grid = pipe.grid(backgrounds, {"seed:4"}, {"code:3"}, textures);
    CHECK(pipe.grid(backgrounds, {"seed:4"}, {"code:3"}, textures).image == grid.image); // same seed, same samples
    CHECK(grid.cells.size() == 6 && grid.image.width() > 3 * 32 && grid.image.height() > 2 * 32);
    for (size_t i = 0; i < grid.cells.size(); ++i)
        CHECK(grid.cells[i] == pipe.mix(backgrounds[i / 3], "seed:4", "code:3", textures[i % 3]));

    // Codes: generate(encode(references)) is the mix of the references.
    mnm::Codes codes = pipe.encode({strided, other});
    CHECK(codes.count == 2 && codes.z.size() == size_t(2 * info.z_dim) && codes.c.size() == size_t(2 * info.c_dim));
    auto row = [](const std::vector<float> &values, int dim, int i) {
        return std::vector<float>(values.begin() + i * dim, values.begin() + (i + 1) * dim);
    };
    std::vector<mnm::Image> generated =
        pipe.generate(1, row(codes.z, info.z_dim, 0), row(codes.b, info.b_dim, 0), row(codes.z, info.z_dim, 1),
                      row(codes.p, info.p_dim, 1), row(codes.c, info.c_dim, 0));
    CHECK(generated.size() == 1 && generated[0] == pipe.mix(strided, other, other, strided));
    EXPECT_ERROR(pipe.generate(2, codes.z, codes.b, codes.z, codes.p, row(codes.c, info.c_dim, 0)), MNM_ERR_ARGUMENT,
                 "count x its dimension");

    // Animators: RAII, movable; closing the pipeline stops them.
    mnm::Animator animator = pipe.animator(strided, mnm::Mode::Feature);
    mnm::Image first = animator.frame(other);
    mnm::Animator moved = std::move(animator);
    CHECK(animator.handle() == nullptr && moved.frame(other) == first);
    CHECK(!(moved.frame(strided) == first));
    mnm::AnimatorOptions boxes;
    boxes.frame_box = std::array<double, 4>{5, 5, 30, 30};
    mnm::Animator boxed_frames = pipe.animator(strided, boxes);
    CHECK(!(boxed_frames.frame(strided) == pipe.animator(strided).frame(strided)));

    // Image files: the library's decoder and encoder.
    mnm::save_image(work + "/hpp.png", from_strided);
    CHECK(mnm::load_image(work + "/hpp.png") == from_strided);
    EXPECT_ERROR(mnm::load_image(work + "/missing.png"), MNM_ERR_NOT_FOUND, "image file not found");

    // Moving a pipeline moves its handle; close() reports, the destructor then does nothing.
    mnm::Pipeline kept = std::move(pipe);
    CHECK(pipe.handle() == nullptr && kept.handle() != nullptr);
    CHECK(kept.mix("seed:1", "seed:2", "code:1", "code:2") == kept.mix("seed:1", "seed:2", "code:1", "code:2"));
    kept.close();
    EXPECT_ERROR(moved.frame(other), MNM_ERR_CLOSED, "the animator's pipeline was closed");
    CHECK(kept.handle() == nullptr);

    std::printf("%d checks, %d failed\n", checks, failures);
    return failures ? 1 : 0;
}
