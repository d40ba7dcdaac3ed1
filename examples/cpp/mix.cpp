// mnm-mix: one mix-and-match image from four references, as `mnm mix` makes it.
//
//   mnm-mix BUNDLE BACKGROUND POSE SHAPE TEXTURE OUT.png [--mode code|feature] [--fit crop|squash] [--seed N]
//
// Each factor is an image file or a spec: random, code:K, seed:N. The library decodes the files as
// the mnm CLI does (EXIF orientation, transparency over white), so this program needs nothing but
// libmnm. In feature mode the shape comes from the pose image: give the same file for SHAPE and
// POSE. The output is written by the library, atomically. Random factors use the library's own
// generator: the same seed gives the same image here, not the image of the Python CLI (docs/capi.md).
#include <cstdint>
#include <string>
#include <vector>

#include "common.hpp"

static const char usage[] =
    "usage: mnm-mix BUNDLE BACKGROUND POSE SHAPE TEXTURE OUT.png [--mode code|feature] [--fit crop|squash] [--seed N]\n"
    "  factors: an image file, random, code:K or seed:N\n";

int main(int argc, char **argv)
{
    try {
        example::CommandLine cli(argc, argv, {"--mode", "--fit", "--seed"}, {"--help"});
        if (cli.has("--help") || cli.positional.size() != 6) {
            (cli.has("--help") ? std::cout : std::cerr) << usage;
            return cli.has("--help") ? 0 : 2;
        }
        const std::vector<std::string> &args = cli.positional;
        mnm::Mode mode = example::parse_mode(cli.option("--mode", "code"));
        mnm::Options options;
        options.fit = example::parse_fit(cli.option("--fit", "crop"));
        uint32_t seed = uint32_t(std::stoul(cli.option("--seed", "0")));

        // Feature mode takes shape and pose from one image: the same file means "from the pose".
        mnm::Factor shape = mode == mnm::Mode::Feature && args[3] == args[2] ? mnm::Factor() : mnm::Factor(args[3]);
        mnm::Pipeline pipeline(args[0], options);
        mnm::Image image = pipeline.mix(args[1], args[2], shape, args[4], mode, seed);
        mnm::save_image(args[5], image);
        std::cout << "wrote " << args[5] << "\n";
        return 0;
    } catch (const std::exception &error) { // mnm::Error and command-line errors
        return example::fail(error.what());
    }
}
