#include "bundle.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>

#include <nlohmann/json.hpp>

#include "failure.hpp"
#include "sha256.hpp"

namespace mnm {
namespace {

using Json = nlohmann::json;

constexpr const char *FORMAT = "mnm-bundle";
constexpr int FORMAT_VERSION = 1; // the newest manifest format this reader understands
const char *const PRECISIONS[] = {"auto", "fp32", "fp16", "int8"};
const char *const CODE_GRAPHS[] = {"enc_z", "enc_b", "enc_p", "enc_c", "g_background", "g_parent", "g_child"};

[[noreturn]] void bad(const std::string &message) { throw Failure(MNM_ERR_BUNDLE, message); }

bool is_file(const std::string &path)
{
    struct stat info;
    return stat(path.c_str(), &info) == 0 && S_ISREG(info.st_mode);
}

std::string shown(const Json &value) { return value.dump(); }

const Json &field(const Json &data, const char *key, Json::value_t kind, const std::string &where,
                  const char *kind_name)
{
    auto found = data.find(key);
    if (found == data.end() || found->type() != kind)
        bad(where + ": field '" + key + "' missing or not a " + kind_name);
    return *found;
}

// A field that may be absent or null, but has the given kind when present.
const Json *optional(const Json &data, const char *key, Json::value_t kind, const std::string &where,
                     const char *kind_name)
{
    auto found = data.find(key);
    if (found == data.end() || found->is_null())
        return nullptr;
    bool ok = kind == Json::value_t::number_unsigned ? found->is_number_unsigned() : found->type() == kind;
    if (!ok)
        bad(where + ": field '" + key + "' must be " + kind_name + ", got " + shown(*found));
    return &*found;
}

std::string inside(const std::string &root, const Json &entry, const char *key, const std::string &where)
{
    auto found = entry.find(key);
    if (found == entry.end() || !found->is_string() || found->get<std::string>().empty())
        bad(where + ": a file entry is missing or not a string");
    std::string relative = found->get<std::string>();
    std::istringstream parts(relative);
    std::string part;
    bool escapes = relative[0] == '/';
    while (std::getline(parts, part, '/'))
        escapes = escapes || part == "..";
    if (escapes)
        bad(where + ": file '" + relative + "' points outside the bundle");
    return root + "/" + relative;
}

std::vector<TensorSpec> tensors(const Json &items, const std::string &where)
{
    std::vector<TensorSpec> specs;
    for (const Json &t : items) {
        bool ok = t.is_object() && t.contains("name") && t["name"].is_string() && t.contains("shape") &&
                  t["shape"].is_array() && t.contains("dtype") && t["dtype"].is_string();
        if (!ok)
            bad(where + ": an input/output entry needs a name, a shape list and a dtype, got " + shown(t));
        TensorSpec spec{t["name"].get<std::string>(), {}, t["dtype"].get<std::string>()};
        for (const Json &d : t["shape"])
            spec.shape.push_back(d.is_number_integer() ? d.get<int64_t>() : -1);
        specs.push_back(spec);
    }
    return specs;
}

GraphTable graph_entries(const std::string &root, const Json *table, const std::string &where,
                         const std::string &section)
{
    GraphTable entries;
    if (table == nullptr)
        return entries;
    for (auto item = table->begin(); item != table->end(); ++item) {
        std::string here = where + " " + section + "." + item.key();
        const Json &g = item.value();
        if (!g.is_object())
            bad(here + ": must be an object");
        GraphEntry entry;
        entry.name = item.key();
        entry.path = inside(root, g, "file", here);
        entry.sha256 = field(g, "sha256", Json::value_t::string, here, "str").get<std::string>();
        entry.inputs = tensors(field(g, "inputs", Json::value_t::array, here, "list"), here);
        entry.outputs = tensors(field(g, "outputs", Json::value_t::array, here, "list"), here);
        for (const char *key : {"bytes", "params", "macs_per_image"})
            optional(g, key, Json::value_t::number_unsigned, here, "a non-negative integer");
        entries[entry.name] = entry;
    }
    return entries;
}

ModelConfig model_config(const Json &data, const std::string &source)
{
    ModelConfig config;
    std::map<std::string, int *> known = {{"image_size", &config.image_size}, {"z_dim", &config.z_dim},
                                          {"ngf", &config.ngf},               {"ndf", &config.ndf},
                                          {"n_parent", &config.n_parent},     {"n_child", &config.n_child}};
    std::string unknown;
    for (auto item = data.begin(); item != data.end(); ++item)
        if (!known.count(item.key()))
            unknown += (unknown.empty() ? "" : ", ") + item.key();
    if (!unknown.empty())
        bad(source + ": unknown config field(s) " + unknown +
            "; known: image_size, n_child, n_parent, ndf, ngf, z_dim");
    for (auto item = data.begin(); item != data.end(); ++item) {
        const Json &value = item.value();
        if (!value.is_number_integer() || value.get<int64_t>() < INT32_MIN || value.get<int64_t>() > INT32_MAX)
            bad(source + ": field " + item.key() + " must be an integer, got " + shown(value));
        *known[item.key()] = value.get<int>();
    }
    int s = config.image_size;
    if (!(s >= 32 && s <= 256 && (s & (s - 1)) == 0))
        bad(source + ": image_size must be a power of two from 32 to 256, got " + std::to_string(s));
    for (const char *name : {"z_dim", "ngf", "ndf", "n_parent", "n_child"})
        if (*known[name] < 1)
            bad(source + ": " + name + " must be a positive integer, got " + std::to_string(*known[name]));
    if (config.ngf % 8)
        bad(source + ": ngf must be a multiple of 8 (the shape feature has ngf/4 channels), got " +
            std::to_string(config.ngf));
    return config;
}

Json read_manifest(const std::string &path)
{
    std::ifstream in(path, std::ios::binary);
    if (!in)
        bad(path + ": bundle manifest not found");
    std::stringstream text;
    text << in.rdbuf();
    Json manifest;
    try {
        manifest = Json::parse(text.str());
    } catch (const Json::exception &exc) {
        bad(path + ": unreadable bundle manifest, not valid JSON (" + exc.what() + ")");
    }
    if (!manifest.is_object())
        bad(path + ": the bundle manifest must hold a JSON object");
    return manifest;
}

std::string file_problem(const std::string &path, const std::string &expected)
{
    if (!is_file(path))
        return "missing (listed in manifest.json)";
    std::string actual;
    try {
        actual = sha256_file(path);
    } catch (const std::exception &exc) {
        return std::string("cannot read (") + exc.what() + ")";
    }
    if (actual != expected)
        return "sha256 mismatch: the file changed after export (expected " + expected.substr(0, 12) + "..., got " +
               actual.substr(0, 12) + "...); re-export the bundle";
    return "";
}

} // namespace

std::string sha256_file(const std::string &path)
{
    std::unique_ptr<FILE, int (*)(FILE *)> file(std::fopen(path.c_str(), "rb"), std::fclose);
    if (!file)
        throw std::runtime_error(std::strerror(errno));
    Sha256 hash;
    std::vector<char> chunk(1 << 20);
    size_t got;
    while ((got = std::fread(chunk.data(), 1, chunk.size(), file.get())) > 0)
        hash.update(chunk.data(), got);
    if (std::ferror(file.get()))
        throw std::runtime_error(std::strerror(errno));
    return hash.hex();
}

void check_precision_name(const std::string &precision, const std::string &what)
{
    for (const char *known : PRECISIONS)
        if (precision == known)
            return;
    argument_error(what + " must be one of auto, fp32, fp16, int8, got '" + precision + "'");
}

Bundle Bundle::open(const std::string &folder)
{
    struct stat info;
    if (stat(folder.c_str(), &info) != 0)
        throw Failure(MNM_ERR_NOT_FOUND, folder + ": bundle folder not found");
    if (!S_ISDIR(info.st_mode))
        bad(folder + ": a bundle is a folder (made by mnm export), not a file");
    std::string where = folder + "/manifest.json";
    if (!is_file(where))
        bad(where + ": missing; " + folder + " is not an exported bundle");
    Json manifest = read_manifest(where);
    auto format = manifest.find("format");
    if (format == manifest.end() || *format != FORMAT)
        bad(where + ": not an mnm bundle manifest (format " +
            (format == manifest.end() ? std::string("None") : shown(*format)) + ")");
    auto version = manifest.find("format_version");
    if (version == manifest.end() || !version->is_number_integer() || version->get<int64_t>() < 1)
        bad(where + ": missing or invalid bundle format version " +
            (version == manifest.end() ? std::string("None") : shown(*version)));
    if (version->get<int64_t>() > FORMAT_VERSION)
        bad(where + ": bundle format " + std::to_string(version->get<int64_t>()) + " is newer than this mnm reads (" +
            std::to_string(FORMAT_VERSION) + "); upgrade mnm or re-export with this version");

    Bundle bundle;
    bundle.path_ = folder;
    bundle.config_ = model_config(field(manifest, "config", Json::value_t::object, where, "dict"), where + " config");
    optional(manifest, "source", Json::value_t::object, where, "a JSON object");
    optional(manifest, "exporter", Json::value_t::object, where, "a JSON object");
    optional(manifest, "normalization", Json::value_t::object, where, "a JSON object");
    optional(manifest, "opset", Json::value_t::number_unsigned, where, "a non-negative integer");
    optional(manifest, "created", Json::value_t::string, where, "a string");
    const Json *modes = optional(manifest, "modes", Json::value_t::array, where, "a JSON list");
    if (modes == nullptr || modes->empty())
        bundle.modes_ = {"code"};
    else
        for (const Json &mode : *modes) {
            if (!mode.is_string() || (mode != "code" && mode != "feature"))
                bad(where + ": 'modes' must list code and/or feature, got " + shown(*modes));
            bundle.modes_.push_back(mode.get<std::string>());
        }
    bundle.graphs_ = graph_entries(folder, &field(manifest, "graphs", Json::value_t::object, where, "dict"), where,
                                   "graphs");
    bundle.graphs_fp16_ = graph_entries(
        folder, optional(manifest, "graphs_fp16", Json::value_t::object, where, "a JSON object"), where, "graphs_fp16");
    bundle.graphs_int8_ = graph_entries(
        folder, optional(manifest, "graphs_int8", Json::value_t::object, where, "a JSON object"), where, "graphs_int8");
    if (const Json *engines = optional(manifest, "engines", Json::value_t::object, where, "a JSON object"))
        for (auto item = engines->begin(); item != engines->end(); ++item) {
            std::string here = where + " engines." + item.key();
            if (item.key().find('.') == std::string::npos || !item.value().is_object())
                bad(here + ": engine keys are '<graph>.<precision>' with an object value");
            inside(folder, item.value(), "record", here);
            bundle.engine_files_.emplace_back(
                inside(folder, item.value(), "file", here),
                field(item.value(), "sha256", Json::value_t::string, here, "str").get<std::string>());
        }
    for (const std::string &mode : bundle.modes_) {
        std::vector<std::string> needed(std::begin(CODE_GRAPHS), std::end(CODE_GRAPHS));
        if (mode == "feature")
            needed.push_back("extractor");
        std::string absent;
        for (const std::string &g : needed)
            if (!bundle.graphs_.count(g))
                absent += (absent.empty() ? "" : ", ") + g;
        if (!absent.empty())
            bad(where + ": mode " + mode + " needs graph(s) " + absent + ", not in the manifest");
    }
    // Verify: every listed file present and unchanged, the first problem named.
    for (const GraphTable *table : {&bundle.graphs_, &bundle.graphs_fp16_, &bundle.graphs_int8_})
        for (const auto &item : *table) {
            std::string problem = file_problem(item.second.path, item.second.sha256);
            if (!problem.empty())
                bad(item.second.path + ": " + problem);
        }
    for (const auto &engine : bundle.engine_files_) {
        std::string problem = file_problem(engine.first, engine.second);
        if (!problem.empty())
            bad(engine.first + ": " + problem);
    }
    return bundle;
}

bool Bundle::has_mode(const std::string &mode) const
{
    return std::find(modes_.begin(), modes_.end(), mode) != modes_.end();
}

void Bundle::check_precision(const std::string &precision) const
{
    check_precision_name(precision, "precision");
    if (precision == "int8" && graphs_int8_.empty())
        argument_error(path_ + ": the bundle has no INT8 graphs (export it with --int8); use --precision fp32 or auto");
    if (precision == "fp16" && graphs_fp16_.empty())
        argument_error(path_ + ": the bundle has no fp16 graphs (export it with --fp16)");
}

std::string Bundle::precision_of(const std::string &name, const std::string &precision) const
{
    if (precision == "auto" || precision == "int8")
        return graphs_int8_.count(name) ? "int8" : "fp32";
    return precision;
}

const GraphEntry &Bundle::graph(const std::string &name, const std::string &precision) const
{
    std::string resolved = precision_of(name, precision);
    const GraphTable &table = resolved == "int8" ? graphs_int8_ : resolved == "fp16" ? graphs_fp16_ : graphs_;
    auto found = table.find(name);
    if (found == table.end()) {
        bool fp16 = resolved == "fp16";
        throw Failure(MNM_ERR_UNSUPPORTED, path_ + ": the bundle has no " + (fp16 ? "fp16 graph" : "graph") + " '" +
                                               name + "'" + (fp16 ? " (export with --fp16)" : ""));
    }
    return found->second;
}

std::string Bundle::describe_precision(const std::string &precision) const
{
    size_t int8 = 0;
    std::string first;
    bool same = true;
    for (const auto &item : graphs_) {
        std::string kind = precision_of(item.first, precision);
        int8 += kind == "int8";
        if (first.empty())
            first = kind;
        same = same && kind == first;
    }
    if (same)
        return first;
    return "int8 for " + std::to_string(int8) + " of " + std::to_string(graphs_.size()) + " graphs, else fp32";
}

} // namespace mnm
