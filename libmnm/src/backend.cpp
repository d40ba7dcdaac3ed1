#include "backend.hpp"

#include <sys/stat.h>

#include <cstdlib>
#include <cstring>

#include "failure.hpp"
#include "machine.hpp"
#include "sha256.hpp"

namespace mnm {
namespace {

const char *const NAMES[] = {"ort-cpu", "ort-cuda", "ort-trt", "tensorrt"};
const char *const AUTO_ORDER[] = {"ort-trt", "ort-cuda", "ort-cpu"};
constexpr int SPIN_US = 100; // idle intra-op workers spin this long before they sleep (runtime/backends/ort.py)

const char *provider_of(const std::string &name)
{
    if (name == "ort-cuda")
        return "CUDAExecutionProvider";
    if (name == "ort-trt")
        return "TensorrtExecutionProvider";
    return "CPUExecutionProvider";
}

std::string first_line(const char *text)
{
    std::string line(text);
    size_t end = line.find('\n');
    return end == std::string::npos ? line : line.substr(0, end);
}

// Why this ONNX Runtime has no such provider ("" when it is built in; only starting it tells more).
std::string unavailable_reason(const std::string &name)
{
    for (const std::string &provider : Ort::GetAvailableProviders())
        if (provider == provider_of(name))
            return "";
    return std::string("this onnxruntime build has no ") + provider_of(name) +
           "; load the GPU build of onnxruntime (onnxruntime-gpu's libonnxruntime.so) instead (docs/gpu.md)";
}

void make_dirs(const std::string &path)
{
    for (size_t at = 1; at != std::string::npos; at = path.find('/', at + 1))
        mkdir(path.substr(0, at).c_str(), 0755);
    mkdir(path.c_str(), 0755);
}

// ~/.cache/mnm/ort-trt/<graphs>/ort<v>/<precision>-b<max_batch>: what invalidates the engines.
std::string tensorrt_cache_dir(const Bundle &bundle, const std::string &version, const std::string &precision,
                               int max_batch)
{
    const char *xdg = std::getenv("XDG_CACHE_HOME"), *home = std::getenv("HOME");
    std::string base = xdg && *xdg ? xdg : std::string(home && *home ? home : "/tmp") + "/.cache";
    std::string digest;
    for (const auto &item : bundle.graphs())
        digest += item.second.sha256.substr(0, 8);
    return base + "/mnm/ort-trt/" + digest.substr(0, 32) + "/ort" + version + "/" + precision + "-b" +
           std::to_string(max_batch);
}

std::string profile_shapes(const GraphEntry &graph, int batch)
{
    std::string text;
    for (const TensorSpec &t : graph.inputs) {
        text += (text.empty() ? "" : ",") + t.name + ":";
        for (size_t i = 0; i < t.shape.size(); ++i)
            text += (i ? "x" : "") + std::to_string(t.shape[i] < 0 ? batch : t.shape[i]);
    }
    return text;
}

void check(OrtStatus *status)
{
    if (status == nullptr)
        return;
    std::string message = Ort::GetApi().GetErrorMessage(status);
    Ort::GetApi().ReleaseStatus(status);
    throw Backend::Unavailable(first_line(message.c_str()));
}

void append_provider(OrtSessionOptions *options, const char *kind, const std::vector<std::pair<std::string, std::string>> &settings)
{
    const OrtApi &api = Ort::GetApi();
    std::vector<const char *> keys, values;
    for (const auto &setting : settings) {
        keys.push_back(setting.first.c_str());
        values.push_back(setting.second.c_str());
    }
    if (std::strcmp(kind, "cuda") == 0) {
        OrtCUDAProviderOptionsV2 *cuda = nullptr;
        check(api.CreateCUDAProviderOptions(&cuda));
        std::unique_ptr<OrtCUDAProviderOptionsV2, decltype(api.ReleaseCUDAProviderOptions)> hold(
            cuda, api.ReleaseCUDAProviderOptions);
        check(api.UpdateCUDAProviderOptions(cuda, keys.data(), values.data(), keys.size()));
        check(api.SessionOptionsAppendExecutionProvider_CUDA_V2(options, cuda));
    } else {
        OrtTensorRTProviderOptionsV2 *trt = nullptr;
        check(api.CreateTensorRTProviderOptions(&trt));
        std::unique_ptr<OrtTensorRTProviderOptionsV2, decltype(api.ReleaseTensorRTProviderOptions)> hold(
            trt, api.ReleaseTensorRTProviderOptions);
        check(api.UpdateTensorRTProviderOptions(trt, keys.data(), values.data(), keys.size()));
        check(api.SessionOptionsAppendExecutionProvider_TensorRT_V2(options, trt));
    }
}

} // namespace

struct Backend::Session {
    Ort::Session session;
    std::vector<std::string> outputs; // every output name, in the graph's order
};

Backend::Backend(const Bundle &bundle, const OrtLibrary &ort, const std::string &name, const BackendOptions &options)
    : bundle_(bundle), ort_(ort), name_(name), precision_(options.precision),
      threads_(options.threads > 0 ? options.threads : usable_cores()), max_batch_(std::max(1, options.max_batch))
{
    if (name == "tensorrt")
        throw Unavailable("the native library runs TensorRT through onnxruntime's TensorRT execution provider; "
                          "use ort-trt (native TensorRT engines are for the Python runtime)");
    std::string reason = name == "ort-cpu" ? "" : unavailable_reason(name);
    if (!reason.empty())
        throw Unavailable(reason);
    if (name != "ort-cpu" && (precision_ == "auto" || precision_ == "int8")) {
        if (precision_ == "int8") // QDQ graphs are made for (and gated on) the CPU provider
            throw Unavailable("INT8 graphs run on ort-cpu; use --precision fp32 or fp16 on a GPU");
        precision_ = "fp32";
    }
    bundle.check_precision(precision_);
    std::string precision = bundle.describe_precision(precision_);
    if (name == "ort-cpu") {
        description_ = "ort-cpu (onnxruntime " + ort.version + ", " + precision + ", " + std::to_string(threads_) +
                       " thread" + (threads_ > 1 ? "s" : "") + ")";
        return;
    }
    description_ = name + " (onnxruntime " + ort.version + ", " + precision + ", GPU 0)";
    if (name == "ort-trt") {
        cache_dir_ = tensorrt_cache_dir(bundle, ort.version, precision_, max_batch_);
        make_dirs(cache_dir_);
    }
    start_every_session();
}

Backend::~Backend() = default;

void Backend::start_every_session()
{
    // Create and run every graph once: a provider that is listed but cannot start fails here, not
    // in the middle of a request.
    const GraphTable &table = precision_ == "fp16" ? bundle_.graphs_fp16() : bundle_.graphs();
    try {
        for (const auto &item : table) {
            Feeds zeros;
            for (const TensorSpec &t : item.second.inputs) {
                Tensor zero;
                for (int64_t d : t.shape)
                    zero.shape.push_back(d < 0 ? 1 : d);
                zero.data.assign(zero.row_size() * size_t(zero.shape.empty() ? 1 : zero.shape[0]), 0.0f);
                zeros.emplace_back(t.name, std::move(zero));
            }
            run(item.first, zeros);
        }
    } catch (const Failure &failure) {
        throw Unavailable(std::string(provider_of(name_)) + " does not run here (" + failure.what() + ")");
    }
}

Backend::Session &Backend::session(const std::string &graph) const
{
    std::lock_guard<std::mutex> hold(lock_);
    auto found = sessions_.find(graph);
    if (found != sessions_.end())
        return *found->second;
    const GraphEntry &entry = bundle_.graph(graph, precision_);
    try {
        Ort::SessionOptions options;
        options.SetGraphOptimizationLevel(ORT_ENABLE_ALL);
        options.SetIntraOpNumThreads(threads_);
        options.SetInterOpNumThreads(1);
        options.SetExecutionMode(ORT_SEQUENTIAL);
        options.EnableCpuMemArena();
        options.EnableMemPattern();
        options.SetLogSeverityLevel(3);
        options.AddConfigEntry("session.intra_op.allow_spinning", "1");
        options.AddConfigEntry("session.intra_op.spin_duration_us", std::to_string(SPIN_US).c_str());
        std::vector<std::pair<std::string, std::string>> cuda = {
            {"device_id", "0"}, {"cudnn_conv_algo_search", "EXHAUSTIVE"}, {"use_tf32", precision_ == "fp32" ? "0" : "1"}};
        if (name_ == "ort-trt")
            append_provider(options, "trt",
                            {{"device_id", "0"},
                             {"trt_fp16_enable", precision_ == "fp16" ? "1" : "0"},
                             {"trt_engine_cache_enable", "1"},
                             {"trt_engine_cache_path", cache_dir_},
                             {"trt_timing_cache_enable", "1"},
                             {"trt_timing_cache_path", cache_dir_},
                             {"trt_profile_min_shapes", profile_shapes(entry, 1)},
                             {"trt_profile_opt_shapes", profile_shapes(entry, max_batch_)},
                             {"trt_profile_max_shapes", profile_shapes(entry, max_batch_)}});
        if (name_ != "ort-cpu")
            append_provider(options, "cuda", cuda);
        auto made = std::make_unique<Session>(Session{Ort::Session(*ort_.env, entry.path.c_str(), options), {}});
        Ort::AllocatorWithDefaultOptions allocator;
        for (size_t i = 0; i < made->session.GetOutputCount(); ++i)
            made->outputs.push_back(made->session.GetOutputNameAllocated(i, allocator).get());
        return *(sessions_[graph] = std::move(made));
    } catch (const Ort::Exception &exc) {
        std::string problem = entry.path + ": onnxruntime cannot load the graph (" + first_line(exc.what()) + ")";
        if (name_ != "ort-cpu")
            throw Unavailable(problem);
        throw Failure(MNM_ERR_RUNTIME, problem);
    }
}

Outputs Backend::run(const std::string &graph, const Feeds &feeds, const std::vector<std::string> &outputs) const
{
    Session &s = session(graph);
    Ort::MemoryInfo memory = Ort::MemoryInfo::CreateCpu(OrtArenaAllocator, OrtMemTypeDefault);
    std::vector<const char *> input_names;
    std::vector<Ort::Value> inputs;
    for (const auto &feed : feeds) {
        input_names.push_back(feed.first.c_str());
        Tensor &t = const_cast<Tensor &>(feed.second); // onnxruntime reads inputs only
        inputs.push_back(Ort::Value::CreateTensor<float>(memory, t.data.data(), t.data.size(), t.shape.data(),
                                                         t.shape.size()));
    }
    const std::vector<std::string> &names = outputs.empty() ? s.outputs : outputs;
    std::vector<const char *> output_names;
    for (const std::string &name : names)
        output_names.push_back(name.c_str());
    Outputs result;
    try {
        std::vector<Ort::Value> values = s.session.Run(Ort::RunOptions{nullptr}, input_names.data(), inputs.data(),
                                                       inputs.size(), output_names.data(), output_names.size());
        for (size_t i = 0; i < values.size(); ++i) {
            auto info = values[i].GetTensorTypeAndShapeInfo();
            if (info.GetElementType() != ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT)
                throw Failure(MNM_ERR_RUNTIME, graph + ": output " + names[i] + " is not float32");
            Tensor &out = result[names[i]];
            out.shape = info.GetShape();
            const float *data = values[i].GetTensorData<float>();
            out.data.assign(data, data + info.GetElementCount());
        }
    } catch (const Ort::Exception &exc) {
        throw Failure(MNM_ERR_RUNTIME, graph + ": onnxruntime run failed (" + first_line(exc.what()) + ")");
    }
    return result;
}

std::unique_ptr<Backend> create_backend(const Bundle &bundle, const OrtLibrary &ort, const BackendOptions &options)
{
    const std::string &name = options.name;
    bool known = name == "auto";
    for (const char *n : NAMES)
        known = known || name == n;
    if (!known)
        argument_error("unknown backend '" + name + "'; choose auto, ort-cpu, ort-cuda, ort-trt, tensorrt");
    if (name != "auto") {
        try {
            return std::make_unique<Backend>(bundle, ort, name, options);
        } catch (const Backend::Unavailable &exc) {
            throw Failure(MNM_ERR_BACKEND, "backend " + name + " cannot run here: " + exc.what());
        }
    }
    std::string skipped;
    for (const char *candidate : AUTO_ORDER) {
        try {
            return std::make_unique<Backend>(bundle, ort, candidate, options);
        } catch (const Backend::Unavailable &exc) {
            skipped += (skipped.empty() ? "" : "; ") + std::string(candidate) + ": " + exc.what();
        }
    }
    throw Failure(MNM_ERR_BACKEND, "no backend can run here: " + skipped);
}

} // namespace mnm
