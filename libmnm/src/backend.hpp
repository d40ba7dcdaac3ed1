// Backends that run a bundle's graphs on ONNX Runtime: CPU, CUDA and the TensorRT execution
// provider, one session per graph, with the names, settings and errors of the Python runtime
// (runtime/backends/ort.py, ort_gpu.py). Sessions are thread-safe: one backend serves many threads.
#ifndef MNM_SRC_BACKEND_HPP
#define MNM_SRC_BACKEND_HPP

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "bundle.hpp"
#include "onnxruntime.hpp"
#include "tensor.hpp"

namespace mnm {

struct BackendOptions {
    std::string name = "auto";      // auto, ort-cpu, ort-cuda, ort-trt (tensorrt: not in the native library)
    std::string precision = "auto"; // auto, fp32, fp16, int8
    int threads = 0;                // 0: usable_cores()
    int max_batch = 16;
};

class Backend {
public:
    // Starts the named backend (not "auto"); throws Unavailable when it cannot run here.
    Backend(const Bundle &bundle, const OrtLibrary &ort, const std::string &name, const BackendOptions &options);
    ~Backend();

    // Runs `graph` once (the caller batches). `outputs` empty: all of the graph's outputs.
    Outputs run(const std::string &graph, const Feeds &feeds, const std::vector<std::string> &outputs = {}) const;
    const std::string &description() const { return description_; }

    struct Unavailable : std::runtime_error {
        using std::runtime_error::runtime_error;
    };

private:
    struct Session;
    Session &session(const std::string &graph) const;
    void start_every_session();

    const Bundle &bundle_;
    const OrtLibrary &ort_;
    std::string name_, precision_, cache_dir_;
    int threads_, max_batch_;
    std::string description_;
    mutable std::mutex lock_; // guards sessions_ (a session, once made, is used without it)
    mutable std::map<std::string, std::unique_ptr<Session>> sessions_;
};

// The backend `options.name` asks for (auto: the fastest that starts). Throws Failure:
// MNM_ERR_ARGUMENT for an unknown name, MNM_ERR_BACKEND when it cannot run here.
std::unique_ptr<Backend> create_backend(const Bundle &bundle, const OrtLibrary &ort, const BackendOptions &options);

} // namespace mnm

#endif
