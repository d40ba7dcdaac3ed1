/* The C half of libmnm.so: the exported functions of mnm.h, the per-thread error message and the
 * start of the embedded interpreter. The build (build.py) compiles this file into the cffi
 * embedding module; the Python half is bridge.py. Design: docs/capi.md.
 *
 * Why the start is ours and not cffi's: cffi would call Py_InitializeEx(0), which finds its
 * packages from the app's PATH and environment. Here the interpreter starts isolated from the
 * app's environment (no PYTHONPATH/PYTHONHOME, no signal handlers), with the stdlib of the Python
 * the library links and the site-packages of one explicit environment: mnm_set_python(), else
 * MNM_PYTHON, else the environment of the build. */
#include <Python.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mnm.h"
#include "mnm_build_config.h" /* MNM_BUILD_VERSION, MNM_BUILD_PYTHON, MNM_BUILD_HOME (written by the build) */

#define MNM_BRIDGE static
#include "bridge.h"

/* ---------------------------------------------------------------- per-thread error message */

static pthread_key_t error_key;
static pthread_once_t error_key_once = PTHREAD_ONCE_INIT;
static const char no_memory_for_message[] = "out of memory (the error message could not be kept)";

static void make_error_key(void) { pthread_key_create(&error_key, free); }

/* Called by bridge.py after a failed call, and here; NULL or "" clears the message. */
static void mnm_capi_set_error(const char *message)
{
    pthread_once(&error_key_once, make_error_key);
    char *old = pthread_getspecific(error_key);
    char *copy = NULL;
    if (message != NULL && message[0] != '\0') {
        copy = strdup(message);
        if (copy == NULL)
            copy = (char *)no_memory_for_message;
    }
    pthread_setspecific(error_key, copy);
    if (old != no_memory_for_message)
        free(old);
}

static mnm_status fail(mnm_status status, const char *format, ...)
{
    char message[2048];
    va_list args;
    va_start(args, format);
    vsnprintf(message, sizeof message, format, args);
    va_end(args);
    mnm_capi_set_error(message);
    return status;
}

MNM_API const char *mnm_last_error(void)
{
    pthread_once(&error_key_once, make_error_key);
    const char *message = pthread_getspecific(error_key);
    return message != NULL ? message : "";
}

MNM_API const char *mnm_status_name(mnm_status status)
{
    static const char *const names[] = {
        "MNM_OK", "MNM_ERR_ARGUMENT", "MNM_ERR_NOT_FOUND", "MNM_ERR_BUNDLE", "MNM_ERR_UNSUPPORTED",
        "MNM_ERR_BACKEND", "MNM_ERR_CLOSED", "MNM_ERR_RUNTIME", "MNM_ERR_PYTHON", "MNM_ERR_MEMORY",
        "MNM_ERR_INTERNAL",
    };
    if ((int)status < 0 || (size_t)status >= sizeof names / sizeof names[0])
        return "MNM_ERR_UNKNOWN";
    return names[status];
}

MNM_API const char *mnm_version(void) { return MNM_BUILD_VERSION; }

MNM_API void mnm_image_free(mnm_image *image)
{
    if (image == NULL || image->owned == NULL)
        return;
    free(image->owned);
    memset(image, 0, sizeof *image);
}

/* ---------------------------------------------------------------- the interpreter */

static pthread_mutex_t start_lock = PTHREAD_MUTEX_INITIALIZER;
static int start_state; /* 0: not started, 1: ready, -1: failed for good (Python starts once per process) */
static char start_error[2048];
static char *chosen_python; /* mnm_set_python */

/* Called by the embedding init code when bridge.py cannot be imported. */
static void mnm_capi_start_failed(const char *message)
{
    snprintf(start_error, sizeof start_error, "%s", message);
}

static int start_failed(const char *format, ...)
{
    va_list args;
    va_start(args, format);
    vsnprintf(start_error, sizeof start_error, format, args);
    va_end(args);
    return -1;
}

/* The pending Python exception as "Type: message" in `buffer`; clears it. Needs the GIL. */
static void take_exception(char *buffer, size_t size)
{
    PyObject *type, *value, *traceback;
    PyErr_Fetch(&type, &value, &traceback);
    PyErr_NormalizeException(&type, &value, &traceback);
    PyObject *text = value != NULL ? PyObject_Str(value) : NULL;
    const char *name = type != NULL ? ((PyTypeObject *)type)->tp_name : "error";
    const char *utf8 = text != NULL ? PyUnicode_AsUTF8(text) : NULL;
    snprintf(buffer, size, "%s: %s", name, utf8 != NULL ? utf8 : "(no message)");
    PyErr_Clear();
    Py_XDECREF(text);
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(traceback);
}

static int initialize_interpreter(void)
{
    const char *python = chosen_python;
    const char *from = "mnm_set_python()";
    if (python == NULL && getenv("MNM_PYTHON") != NULL && getenv("MNM_PYTHON")[0] != '\0') {
        python = getenv("MNM_PYTHON");
        from = "MNM_PYTHON";
    }
    if (python == NULL) {
        python = MNM_BUILD_PYTHON;
        from = "the build of libmnm";
    }
    if (access(python, X_OK) != 0)
        return start_failed("%s: no Python executable there (from %s); give the python of an environment "
                            "with mnm installed (mnm_set_python or MNM_PYTHON)", python, from);
    PyConfig config;
    PyConfig_InitIsolatedConfig(&config);
    PyStatus status = PyConfig_SetBytesString(&config, &config.executable, python);
    if (!PyStatus_Exception(status))
        status = PyConfig_SetBytesString(&config, &config.home, MNM_BUILD_HOME);
    if (!PyStatus_Exception(status))
        status = Py_InitializeFromConfig(&config);
    PyConfig_Clear(&config);
    if (PyStatus_Exception(status))
        return start_failed("the embedded Python (%s, home %s) did not start: %s%s%s", python, MNM_BUILD_HOME,
                            status.func ? status.func : "", status.func ? ": " : "",
                            status.err_msg ? status.err_msg : "exit requested");
    PyEval_SaveThread(); /* the interpreter lives until the process ends; calls take the GIL as they need */
    return 0;
}

static int start_python(void)
{
    start_error[0] = '\0';
    if (!Py_IsInitialized() && initialize_interpreter() != 0)
        return -1;
    /* cffi prints a traceback to stderr when its backend is missing: check it first. */
    char problem[1024] = "";
    PyGILState_STATE gil = PyGILState_Ensure();
    PyObject *backend = PyImport_ImportModule("_cffi_backend");
    if (backend == NULL)
        take_exception(problem, sizeof problem);
    Py_XDECREF(backend);
    PyGILState_Release(gil);
    if (backend == NULL)
        return start_failed("the embedded Python cannot import cffi (%s); install it in that environment: "
                            "pip install 'mnm[capi]'", problem);
    if (cffi_start_python() != 0)
        return start_failed("the embedded Python could not set up libmnm's module");
    return start_error[0] != '\0' ? -1 : 0; /* the init code reports a failed import of bridge.py */
}

/* Start the interpreter once; MNM_OK when it runs with mnm imported. */
static mnm_status ready(void)
{
    mnm_capi_set_error(NULL);
    if (__atomic_load_n(&start_state, __ATOMIC_ACQUIRE) == 1)
        return MNM_OK;
    pthread_mutex_lock(&start_lock);
    int state = start_state;
    if (state == 0) {
        state = start_python() == 0 ? 1 : -1;
        /* a failure before the interpreter started (a wrong path) may be retried after mnm_set_python */
        __atomic_store_n(&start_state, state == -1 && !Py_IsInitialized() ? 0 : state, __ATOMIC_RELEASE);
    }
    pthread_mutex_unlock(&start_lock);
    return state == 1 ? MNM_OK : fail(MNM_ERR_PYTHON, "%s", start_error);
}

MNM_API mnm_status mnm_set_python(const char *python_executable)
{
    mnm_capi_set_error(NULL);
    pthread_mutex_lock(&start_lock);
    mnm_status status = MNM_OK;
    if (start_state != 0 || Py_IsInitialized()) {
        status = fail(MNM_ERR_PYTHON, "Python has already started in this process; call mnm_set_python before "
                                      "any other mnm call that needs it");
    } else {
        char *copy = python_executable != NULL ? strdup(python_executable) : NULL;
        if (python_executable != NULL && copy == NULL) {
            status = fail(MNM_ERR_MEMORY, "out of memory");
        } else {
            free(chosen_python);
            chosen_python = copy;
        }
    }
    pthread_mutex_unlock(&start_lock);
    return status;
}

/* ---------------------------------------------------------------- the calls bridge.py implements */

#define FORWARD(call)                   \
    do {                                \
        mnm_status started = ready();   \
        return started != MNM_OK ? started : (call); \
    } while (0)

MNM_API mnm_status mnm_pipeline_open(const char *bundle, const mnm_pipeline_options *options, mnm_pipeline **out)
{
    FORWARD(mnm_py_pipeline_open(bundle, options, out));
}

MNM_API mnm_status mnm_pipeline_close(mnm_pipeline *pipeline)
{
    if (pipeline == NULL) {
        mnm_capi_set_error(NULL);
        return MNM_OK;
    }
    FORWARD(mnm_py_pipeline_close(pipeline));
}

MNM_API mnm_status mnm_pipeline_info(mnm_pipeline *pipeline, mnm_info *out)
{
    FORWARD(mnm_py_pipeline_info(pipeline, out));
}

MNM_API mnm_status mnm_mix(mnm_pipeline *pipeline, const mnm_mix_request *request, mnm_image *out)
{
    FORWARD(mnm_py_mix(pipeline, request, out));
}

MNM_API mnm_status mnm_grid(mnm_pipeline *pipeline, const mnm_grid_request *request, mnm_image *image,
                            mnm_image *cells)
{
    FORWARD(mnm_py_grid(pipeline, request, image, cells));
}

MNM_API mnm_status mnm_encode(mnm_pipeline *pipeline, const mnm_image *images, mnm_codes *codes)
{
    FORWARD(mnm_py_encode(pipeline, images, codes));
}

MNM_API mnm_status mnm_generate(mnm_pipeline *pipeline, const mnm_generate_request *request, mnm_image *out)
{
    FORWARD(mnm_py_generate(pipeline, request, out));
}

MNM_API mnm_status mnm_animator_open(mnm_pipeline *pipeline, const mnm_image *static_image, mnm_mode mode,
                                     mnm_animator **out)
{
    FORWARD(mnm_py_animator_open(pipeline, static_image, mode, out));
}

MNM_API mnm_status mnm_animator_frame(mnm_animator *animator, const mnm_image *frame, mnm_image *out)
{
    FORWARD(mnm_py_animator_frame(animator, frame, out));
}

MNM_API mnm_status mnm_animator_close(mnm_animator *animator)
{
    if (animator == NULL) {
        mnm_capi_set_error(NULL);
        return MNM_OK;
    }
    FORWARD(mnm_py_animator_close(animator));
}

MNM_API mnm_status mnm_image_load(const char *path, mnm_image *out) { FORWARD(mnm_py_image_load(path, out)); }

MNM_API mnm_status mnm_image_save(const char *path, const mnm_image *image)
{
    FORWARD(mnm_py_image_save(path, image));
}
