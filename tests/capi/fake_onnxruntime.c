/* Stand-ins for a wrong libonnxruntime, built by tests/capi/test_c_api.py: without WITH_API_BASE a
 * library that is not ONNX Runtime (no OrtGetApiBase); with it an ONNX Runtime 1.10.0 whose GetApi
 * offers no C API version newer than 10 (the layout of OrtApiBase in onnxruntime_c_api.h). */
#include <stddef.h>
#include <stdint.h>

#ifdef WITH_API_BASE
typedef struct {
    const void *(*GetApi)(uint32_t version);
    const char *(*GetVersionString)(void);
} ApiBase;

static const void *get_api(uint32_t version) { return version <= 10 ? (const void *)&get_api : NULL; }
static const char *version_string(void) { return "1.10.0"; }
static const ApiBase base = {get_api, version_string};

const ApiBase *OrtGetApiBase(void) { return &base; }
#else
int not_onnxruntime(void) { return 0; }
#endif
