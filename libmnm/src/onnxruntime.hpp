// ONNX Runtime, loaded at run time: dlopen + OrtGetApiBase + GetApi(ORT_API_VERSION), so any
// release that offers this C API version works (the PyPI wheel's library, a release archive's,
// a distribution's) and none is linked. The C++ wrapper runs on the loaded API (ORT_API_MANUAL_INIT).
#ifndef MNM_SRC_ONNXRUNTIME_HPP
#define MNM_SRC_ONNXRUNTIME_HPP

#define ORT_API_MANUAL_INIT
#include <onnxruntime_cxx_api.h>
#undef ORT_API_MANUAL_INIT

#include <string>

namespace mnm {

struct OrtLibrary {
    std::string path;    // as loaded (the name given to dlopen)
    std::string version; // ONNX Runtime's version string
    Ort::Env *env;       // one per process, never destroyed
};

// The loaded library, loading it on the first call: `explicit_path` (may be NULL), else
// $MNM_ONNXRUNTIME, else the build's MNM_ORT_BUILD_PATH, else "libonnxruntime.so.1" from the
// system search path. Throws Failure(MNM_ERR_BACKEND) naming every place tried and why it failed;
// a failure is not remembered (a later call may name another path).
const OrtLibrary &onnxruntime(const char *explicit_path);

// Whether ONNX Runtime was started by this process's parent before a fork (then it must not run here).
bool onnxruntime_inherited();

} // namespace mnm

#endif
