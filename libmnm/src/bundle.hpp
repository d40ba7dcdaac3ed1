// Reading an exported bundle (docs/bundle.md): the manifest, every listed file checked by sha256,
// and the same refusals, in the same words, as the Python reader (runtime/bundle.py).
#ifndef MNM_SRC_BUNDLE_HPP
#define MNM_SRC_BUNDLE_HPP

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace mnm {

// The model sizes the runtime needs (mnm.config.ModelConfig).
struct ModelConfig {
    int image_size = 128;
    int z_dim = 100;
    int ngf = 64;
    int ndf = 64;
    int n_parent = 20;
    int n_child = 200;
    int b_dim() const { return n_child; } // N_b = N_c
};

struct TensorSpec {
    std::string name;
    std::vector<int64_t> shape; // -1 for the symbolic "batch"
    std::string dtype;
};

struct GraphEntry {
    std::string name;
    std::string path;   // the file, inside the bundle folder
    std::string sha256;
    std::vector<TensorSpec> inputs;
    std::vector<TensorSpec> outputs;
};

using GraphTable = std::map<std::string, GraphEntry>;

// A verified bundle folder. Precisions: auto, fp32, fp16, int8 (see runtime/bundle.py).
class Bundle {
public:
    // Parse `folder`/manifest.json and check every listed file's presence and sha256. Throws
    // Failure: MNM_ERR_NOT_FOUND for a missing folder, MNM_ERR_BUNDLE for everything else.
    static Bundle open(const std::string &folder);

    const std::string &path() const { return path_; }
    const ModelConfig &config() const { return config_; }
    bool has_mode(const std::string &mode) const;
    const std::vector<std::string> &modes() const { return modes_; }
    const GraphTable &graphs() const { return graphs_; }
    const GraphTable &graphs_fp16() const { return graphs_fp16_; }
    const GraphTable &graphs_int8() const { return graphs_int8_; }

    // Throws (MNM_ERR_ARGUMENT) for a precision this bundle cannot give.
    void check_precision(const std::string &precision) const;
    // The precision graph `name` runs at when `precision` is asked for.
    std::string precision_of(const std::string &name, const std::string &precision) const;
    const GraphEntry &graph(const std::string &name, const std::string &precision) const;
    // "fp32", "int8", or "int8 for 7 of 8 graphs, else fp32".
    std::string describe_precision(const std::string &precision) const;

private:
    std::string path_;
    ModelConfig config_;
    std::vector<std::string> modes_;
    GraphTable graphs_, graphs_fp16_, graphs_int8_;
    std::vector<std::pair<std::string, std::string>> engine_files_; // (path, sha256)
};

// Refuses (MNM_ERR_ARGUMENT) a precision name no bundle gives.
void check_precision_name(const std::string &precision, const std::string &what);

// The lowercase hex sha256 of a file's bytes; throws std::runtime_error when it cannot be read.
std::string sha256_file(const std::string &path);

} // namespace mnm

#endif
