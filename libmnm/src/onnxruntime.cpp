#include "onnxruntime.hpp"

#include <dlfcn.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <mutex>
#include <utility>
#include <vector>

#include "failure.hpp"

namespace mnm {
namespace {

std::mutex load_lock;
std::atomic<OrtLibrary *> loaded{nullptr}; // set once, under load_lock; never freed (used until exit)
std::atomic<pid_t> loaded_by{0};

// dlopen one candidate: the API on success, else why not (in `why`).
const OrtApi *try_load(const std::string &path, std::string &why, std::string &version)
{
    void *handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (handle == nullptr) {
        const char *error = dlerror();
        why = error ? error : "cannot be loaded";
        return nullptr;
    }
    using GetApiBase = const OrtApiBase *(*)();
    auto get_base = reinterpret_cast<GetApiBase>(dlsym(handle, "OrtGetApiBase"));
    if (get_base == nullptr) {
        why = "has no OrtGetApiBase (not ONNX Runtime's library)";
        dlclose(handle);
        return nullptr;
    }
    const OrtApiBase *base = get_base();
    version = base && base->GetVersionString ? base->GetVersionString() : "unknown";
    const OrtApi *api = base ? base->GetApi(ORT_API_VERSION) : nullptr;
    if (api == nullptr) {
        why = "ONNX Runtime " + version + " is too old (mnm needs its C API version " +
                 std::to_string(ORT_API_VERSION) + ", ONNX Runtime 1." + std::to_string(ORT_API_VERSION) +
                 " or newer)";
        dlclose(handle); // nothing of it is in use
        return nullptr;
    }
    return api; // the library stays loaded for the rest of the process
}

} // namespace

const OrtLibrary &onnxruntime(const char *explicit_path)
{
    if (OrtLibrary *done = loaded.load())
        return *done;
    std::lock_guard<std::mutex> hold(load_lock);
    if (OrtLibrary *done = loaded.load())
        return *done;
    // An explicit choice (the option, then the environment) is the only candidate: never a silent
    // fallback to another library. Without one, the build's library, then the search path.
    std::vector<std::pair<std::string, std::string>> candidates; // (path, where it came from)
    const char *from_env = std::getenv("MNM_ONNXRUNTIME");
    if (explicit_path != nullptr && explicit_path[0] != '\0') {
        candidates.emplace_back(explicit_path, "options.onnxruntime_library");
    } else if (from_env != nullptr && from_env[0] != '\0') {
        candidates.emplace_back(from_env, "MNM_ONNXRUNTIME");
    } else {
#ifdef MNM_ORT_BUILD_PATH
        candidates.emplace_back(MNM_ORT_BUILD_PATH, "the library found when libmnm was built");
#endif
        candidates.emplace_back("libonnxruntime.so.1", "the system's library search path");
    }
    std::string tried;
    for (const auto &candidate : candidates) {
        std::string version, why;
        const OrtApi *api = try_load(candidate.first, why, version);
        if (api == nullptr) {
            tried += (tried.empty() ? "" : "; ") + candidate.first + " (" + candidate.second + "): " + why;
            continue;
        }
        Ort::InitApi(api);
        try {
            auto *env = new Ort::Env(ORT_LOGGING_LEVEL_FATAL, "mnm");
            loaded_by = getpid();
            loaded = new OrtLibrary{candidate.first, version, env};
        } catch (const Ort::Exception &exc) {
            throw Failure(MNM_ERR_BACKEND, candidate.first + ": ONNX Runtime cannot start (" + exc.what() + ")");
        }
        return *loaded.load();
    }
    throw Failure(MNM_ERR_BACKEND, "cannot load ONNX Runtime (libonnxruntime.so.1): tried " + tried +
                                       "; give its path in options.onnxruntime_library or MNM_ONNXRUNTIME");
}

bool onnxruntime_inherited()
{
    // Read without the lock: a fork may have happened while another thread held it.
    return loaded.load() != nullptr && loaded_by.load() != getpid();
}

} // namespace mnm
