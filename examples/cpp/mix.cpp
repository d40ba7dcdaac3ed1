// mnm-mix: one mix-and-match image from four references, as `mnm mix` makes it.
//
//   mnm-mix BUNDLE BACKGROUND POSE SHAPE TEXTURE OUT.png [--mode code|feature] [--seed N]
//
// Each factor is an image file (decoded here with OpenCV and handed over as RGB pixels) or a spec:
// random, code:K, seed:N. In feature mode the shape comes from the pose image: give the same file
// for SHAPE and POSE. The output is written by the library with the CLI's encoder, atomically, so
// for the same pixels it is byte for byte the file `mnm mix` writes. OpenCV decodes PNGs without
// transparency to the same pixels as mnm; it drops an alpha channel (mnm composites it over white).
#include <cstdint>
#include <string>
#include <vector>

#include "common.hpp"

static const char usage[] =
    "usage: mnm-mix BUNDLE BACKGROUND POSE SHAPE TEXTURE OUT.png [--mode code|feature] [--seed N]\n"
    "  factors: an image file, random, code:K or seed:N\n";

static bool is_spec(const std::string &arg)
{
    return arg == "random" || arg.rfind("code:", 0) == 0 || arg.rfind("seed:", 0) == 0;
}

int main(int argc, char **argv)
{
    try {
        example::CommandLine cli(argc, argv, {"--mode", "--seed"}, {"--help"});
        if (cli.has("--help") || cli.positional.size() != 6) {
            (cli.has("--help") ? std::cout : std::cerr) << usage;
            return cli.has("--help") ? 0 : 2;
        }
        const std::vector<std::string> &args = cli.positional;
        mnm::Mode mode = example::parse_mode(cli.option("--mode", "code"));
        uint32_t seed = uint32_t(std::stoul(cli.option("--seed", "0")));

        std::vector<cv::Mat> pixels; // alive until the mix is made
        pixels.reserve(4);
        auto factor = [&](const std::string &arg) -> mnm::Factor {
            if (is_spec(arg))
                return mnm::Factor(arg);
            pixels.push_back(example::read_rgb(arg));
            return mnm::Factor(example::view(pixels.back()));
        };
        mnm::Factor background = factor(args[1]), pose = factor(args[2]), texture = factor(args[4]);
        // Feature mode takes shape and pose from one image: the same file means "from the pose".
        mnm::Factor shape = mode == mnm::Mode::Feature && args[3] == args[2] ? mnm::Factor() : factor(args[3]);

        mnm::Pipeline pipeline(args[0]);
        mnm::Image image = pipeline.mix(background, pose, shape, texture, mode, seed);
        mnm::save_image(args[5], image);
        std::cout << "wrote " << args[5] << "\n";
        return 0;
    } catch (const std::exception &error) { // mnm::Error, OpenCV and command-line errors
        return example::fail(error.what());
    }
}
