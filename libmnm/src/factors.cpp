#include "factors.hpp"

#include <cerrno>
#include <cstdlib>

#include "failure.hpp"

namespace mnm {
namespace {

bool has_code(Kind kind) { return kind != Kind::Pose; }
bool has_z(Kind kind) { return kind == Kind::Background || kind == Kind::Pose; }

std::string trimmed(const std::string &text)
{
    size_t first = text.find_first_not_of(" \t\r\n"), last = text.find_last_not_of(" \t\r\n");
    return first == std::string::npos ? "" : text.substr(first, last - first + 1);
}

// "code:K" or "seed:N" (K, N: an optional minus sign and digits), as runtime/requests.py spells them.
bool is_code_spec(const std::string &text)
{
    if (text.compare(0, 5, "code:") != 0 && text.compare(0, 5, "seed:") != 0)
        return false;
    size_t digits = text.size() > 5 && text[5] == '-' ? 6 : 5;
    return text.size() > digits && text.find_first_not_of("0123456789", digits) == std::string::npos;
}

Values one_hot(int64_t index, int n)
{
    if (index < 0 || index >= n)
        argument_error("code index out of range 0.." + std::to_string(n - 1) + ": [" + std::to_string(index) + "]");
    auto values = std::make_shared<std::vector<float>>(size_t(n), 0.0f);
    (*values)[size_t(index)] = 1.0f;
    return values;
}

} // namespace

const char *kind_name(Kind kind)
{
    static const char *const names[] = {"background", "pose", "shape", "texture"};
    return names[int(kind)];
}

FactorPtr random_factor() { return std::make_shared<const Factor>(Factor{nullptr, {}, {}, {}, "random", ""}); }

FactorPtr parse_spec(const std::string &spec, Kind kind)
{
    std::string text = trimmed(spec), name = kind_name(kind);
    if (text == "random")
        return random_factor();
    if (is_code_spec(text)) {
        errno = 0;
        long long number = std::strtoll(text.c_str() + 5, nullptr, 10);
        if (errno == ERANGE)
            argument_error(name + ": '" + text + "': the number is out of range");
        Factor factor{nullptr, {}, {}, {}, text, ""};
        if (text.compare(0, 5, "code:") == 0) {
            if (!has_code(kind))
                argument_error(name + ": '" + text + "': the pose has no category code; use seed:N or an image");
            factor.code = number;
        } else {
            if (!has_z(kind))
                argument_error(name + ": '" + text + "': the " + name + " has no z; use code:K or an image");
            if (number < 0)
                argument_error("seed:" + std::to_string(number) + ": a seed is a non-negative integer");
            factor.seed = number;
        }
        return std::make_shared<const Factor>(factor);
    }
    if (text.empty())
        argument_error(name + ": empty factor; give an image path, random, code:K or seed:N");
    Rgb image;
    try {
        image = load_image(text);
    } catch (const Failure &failure) {
        if (failure.status() == MNM_ERR_NOT_FOUND)
            throw Failure(MNM_ERR_NOT_FOUND, text + ": reference image not found (" + name +
                                                 ": an image path, random, code:K or seed:N)");
        throw;
    }
    char *absolute = realpath(text.c_str(), nullptr);
    std::string source = "file:" + std::string(absolute ? absolute : text.c_str());
    std::free(absolute);
    size_t slash = text.find_last_of('/');
    std::string label = slash == std::string::npos ? text : text.substr(slash + 1);
    return std::make_shared<const Factor>(
        Factor{std::make_shared<const Rgb>(std::move(image)), {}, {}, {}, label, source});
}

FactorPtr image_factor(std::shared_ptr<const Rgb> image, const std::optional<Box> &box, const std::string &label,
                       const std::string &source, Kind kind)
{
    std::string key = source;
    if (box) {
        validate_box(*box, image->width, image->height, std::string(kind_name(kind)) + " box");
        for (double v : *box)
            key += ":" + std::to_string(v);
    }
    return std::make_shared<const Factor>(Factor{std::move(image), box, {}, {}, label, key});
}

std::vector<float> z_from_seed(int64_t seed, int z_dim)
{
    Random random{uint64_t(seed)};
    std::vector<float> z(static_cast<size_t>(z_dim));
    for (float &v : z)
        v = float(random.normal());
    return z;
}

Codes resolve(const Factor &factor, Kind kind, const ModelConfig &config, Random &random)
{
    Codes codes;
    if (has_code(kind)) {
        int n = kind == Kind::Background ? config.b_dim() : kind == Kind::Shape ? config.n_parent : config.n_child;
        codes.code = one_hot(factor.code ? *factor.code : int64_t(random.below(uint64_t(n))), n);
    }
    if (has_z(kind)) {
        if (factor.seed) {
            codes.z = std::make_shared<const std::vector<float>>(z_from_seed(*factor.seed, config.z_dim));
        } else {
            auto z = std::make_shared<std::vector<float>>(size_t(config.z_dim));
            for (float &v : *z)
                v = float(random.normal());
            codes.z = z;
        }
    }
    return codes;
}

} // namespace mnm
