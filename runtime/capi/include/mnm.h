/*
 * mnm.h: the C API of the mnm runtime (MixNMatch mix-and-match and animation on an exported bundle).
 *
 * libmnm.so embeds the torch-free Python runtime (mnm.runtime); this header is plain C99 and needs
 * no Python headers. Build: `make cpp`; link: `-lmnm` (docs/capi.md, README "C and C++").
 *
 * Conventions
 * - Every function that can fail returns an mnm_status; MNM_OK is 0. After a failure,
 *   mnm_last_error() gives a one-line message for the calling thread.
 * - Handles (mnm_pipeline, mnm_animator) are opaque. A closed or unknown handle gives
 *   MNM_ERR_CLOSED, never a crash: handle values are never reused.
 * - Images are RGB, 8 bits per channel, rows top to bottom: the pixel (x, y) channel k is at
 *   data[y * stride + 3 * x + k]. Inputs are borrowed for the call only (the library copies what
 *   it keeps). An output image is caller-provided when its data is not NULL (width and height must
 *   be the result's, stride >= 3 * width, size >= stride * (height - 1) + 3 * width) and
 *   library-allocated when data is NULL (free it with mnm_image_free).
 * - Strings passed in are UTF-8 and borrowed for the call. Strings returned are owned by the
 *   library; how long each lives is stated at its function.
 *
 * Threads: every function may be called from any thread. One pipeline may be shared by many
 * threads at once (calls run concurrently; the graphs run in parallel, the Python glue between
 * them takes turns on the interpreter lock). mnm_last_error() is per thread. Closing a handle while
 * other threads are inside calls on it is safe: those calls finish, later calls get
 * MNM_ERR_CLOSED, and the resources go when the last call returns.
 *
 * Python: the library starts its own interpreter on the first call that needs it (mnm_version,
 * mnm_last_error, mnm_status_name, mnm_image_free and mnm_set_python never do). It uses the Python
 * environment the library was built in, unless mnm_set_python() or the MNM_PYTHON environment
 * variable names another one (a python executable of the same Python installation with mnm and
 * cffi installed). If the process already runs Python, that interpreter is used as it is.
 */
#ifndef MNM_H
#define MNM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#  define MNM_API __declspec(dllimport)
#else
#  define MNM_API __attribute__((visibility("default")))
#endif

/* MNM_DECLARATIONS_BEGIN: plain declarations only up to MNM_DECLARATIONS_END (the build reads them). */

typedef enum mnm_status {
    MNM_OK = 0,
    MNM_ERR_ARGUMENT = 1,    /* a NULL, a size, stride, count or enum value that does not fit, a bad factor spec */
    MNM_ERR_NOT_FOUND = 2,   /* a bundle folder or image file that does not exist */
    MNM_ERR_BUNDLE = 3,      /* the bundle cannot be used: bad manifest, sha256 mismatch, missing graph */
    MNM_ERR_UNSUPPORTED = 4, /* the bundle lacks what was asked (feature mode on a code-only bundle) */
    MNM_ERR_BACKEND = 5,     /* the backend asked for cannot start here */
    MNM_ERR_CLOSED = 6,      /* the handle was closed, or never was an open handle of that kind */
    MNM_ERR_RUNTIME = 7,     /* the runtime refused the request (an undecodable image file, ...) */
    MNM_ERR_PYTHON = 8,      /* the embedded Python cannot start or cannot import mnm */
    MNM_ERR_MEMORY = 9,      /* out of memory */
    MNM_ERR_INTERNAL = 10    /* an unexpected error (a bug): the message names it */
} mnm_status;

typedef enum mnm_mode {
    MNM_MODE_CODE = 0,   /* shape (p) and pose (z) from the encoders, composed by g_parent */
    MNM_MODE_FEATURE = 1 /* shape and pose both from the extractor S(pose reference) */
} mnm_mode;

typedef enum mnm_stitch {
    MNM_STITCH_NONE = 0,
    MNM_STITCH_BACKGROUND = 1, /* paste the background reference's real pixels outside the object */
    MNM_STITCH_FOREGROUND = 2  /* paste the texture reference's real pixels inside the object */
} mnm_stitch;

/* An RGB8 image (see the conventions above). `owned` is set by the library when it allocated
   `data`; keep it NULL in images you fill yourself. */
typedef struct mnm_image {
    uint8_t *data;
    size_t size;     /* bytes available at data */
    int32_t width;
    int32_t height;
    int32_t stride;  /* bytes from the start of one row to the next, >= 3 * width */
    void *owned;
} mnm_image;

/* One factor of a mix: a reference image, or a spec ("random", "code:K", "seed:N", or an image
   file path decoded by the runtime), or neither (random; for the shape: sampled in code mode,
   taken from the pose reference in feature mode). Setting both is an error. */
typedef struct mnm_factor {
    const char *spec;
    const mnm_image *image;
    const double *box; /* NULL, or the object box x, y, w, h in pixels of `image` (the crop is 1.5 x its side) */
} mnm_factor;

typedef struct mnm_pipeline_options {
    const char *backend; /* NULL or "auto" (the fastest that starts), "ort-cpu", "ort-cuda", "ort-trt", "tensorrt" */
    int32_t threads;     /* onnxruntime CPU threads; 0: the runtime's default (physical cores) */
    int32_t max_batch;   /* most images per graph run; 0: 16 */
    const char *precision; /* NULL or "auto" (INT8 graphs where the bundle has them, else fp32), "fp32",
                              "fp16", "int8" (refused on a bundle without INT8 graphs) */
} mnm_pipeline_options;

typedef struct mnm_mix_request {
    mnm_factor background; /* b and z_bg */
    mnm_factor pose;       /* z_pose (code mode); shape and pose (feature mode: must be an image) */
    mnm_factor shape;      /* p (code mode); feature mode: leave empty or give the pose's image */
    mnm_factor texture;    /* c */
    mnm_mode mode;
    mnm_stitch stitch;
    uint32_t seed;         /* random factors: the same seed gives the same sample */
} mnm_mix_request;

/* A grid: every combination of the listed factors. Cells are in the order
   background, pose, shape, texture (the texture varies fastest). n_shape 0: no shape factor. */
typedef struct mnm_grid_request {
    const mnm_factor *background;
    int32_t n_background;
    const mnm_factor *pose;
    int32_t n_pose;
    const mnm_factor *shape;
    int32_t n_shape;
    const mnm_factor *texture;
    int32_t n_texture;
    mnm_mode mode;
    uint32_t seed;
} mnm_grid_request;

/* Codes of `count` reference images, written by mnm_encode into caller-owned arrays of
   count x dim floats (row-major; dims from mnm_info). A NULL array is not computed. */
typedef struct mnm_codes {
    int32_t count;
    float *z; /* z_dim: the image's z (as background: z_bg; as pose: z_pose) */
    float *b; /* b_dim: background category probabilities */
    float *p; /* p_dim: shape */
    float *c; /* c_dim: texture */
} mnm_codes;

/* Inputs of mnm_generate: `count` rows of each (row-major). b, p, c: one-hot or probabilities. */
typedef struct mnm_generate_request {
    int32_t count;
    const float *z_bg;   /* count x z_dim */
    const float *b;      /* count x b_dim */
    const float *z_pose; /* count x z_dim */
    const float *p;      /* count x p_dim */
    const float *c;      /* count x c_dim */
} mnm_generate_request;

/* What a pipeline runs on. The strings and the graph list belong to the pipeline and stay valid
   until mnm_pipeline_close. */
typedef struct mnm_info {
    int32_t image_size;  /* S: mixes, generated and animated images are S x S */
    int32_t z_dim;
    int32_t b_dim;
    int32_t p_dim;
    int32_t c_dim;
    int32_t has_code_mode;
    int32_t has_feature_mode;
    int32_t graph_count;
    const char *const *graphs; /* graph names (enc_z, g_child, ...) */
    const char *bundle;        /* the bundle folder, absolute */
    const char *backend;       /* the backend that runs, e.g. "ort-cpu (onnxruntime, fp32, 2 threads)" */
    const char *version;       /* the mnm runtime's version */
} mnm_info;

typedef struct mnm_pipeline mnm_pipeline;
typedef struct mnm_animator mnm_animator;

/* MNM_DECLARATIONS_END */

/* ---------------------------------------------------------------- the library */

/* The version of mnm this library was built from ("0.1.0"). Static string; starts no Python. */
MNM_API const char *mnm_version(void);

/* The message of the calling thread's last failed call ("" after a success). Owned by the
   library, valid until the next mnm call on this thread. Never NULL. */
MNM_API const char *mnm_last_error(void);

/* The name of a status ("MNM_ERR_CLOSED"). Static string; unknown values give "MNM_ERR_UNKNOWN". */
MNM_API const char *mnm_status_name(mnm_status status);

/* Use the Python environment of `python_executable` (e.g. "/opt/app/venv/bin/python") instead of
   the one the library was built in. Only before the first call that starts Python; after it:
   MNM_ERR_PYTHON. NULL: back to MNM_PYTHON or the build's environment. */
MNM_API mnm_status mnm_set_python(const char *python_executable);

/* ---------------------------------------------------------------- pipelines */

/* Open a pipeline on the bundle folder `bundle` (every file's sha256 is verified). `options` may be
   NULL (defaults). On success *out is a new handle: close it with mnm_pipeline_close. */
MNM_API mnm_status mnm_pipeline_open(const char *bundle, const mnm_pipeline_options *options, mnm_pipeline **out);

/* Close a pipeline (NULL: nothing to do). Its animators stop working (MNM_ERR_CLOSED). */
MNM_API mnm_status mnm_pipeline_close(mnm_pipeline *pipeline);

/* Fill *out with what the pipeline runs on (strings owned by the pipeline). */
MNM_API mnm_status mnm_pipeline_info(mnm_pipeline *pipeline, mnm_info *out);

/* ---------------------------------------------------------------- mix and match */

/* One S x S mix into *out (caller-provided or library-allocated, see the conventions). */
MNM_API mnm_status mnm_mix(mnm_pipeline *pipeline, const mnm_mix_request *request, mnm_image *out);

/* The labelled grid image into *image (library-allocated when its data is NULL), and, when
   `cells` is not NULL, each cell into cells[0 .. n - 1] (n = the product of the list lengths,
   n_shape counted as 1 when 0; each caller-provided or library-allocated). */
MNM_API mnm_status mnm_grid(mnm_pipeline *pipeline, const mnm_grid_request *request, mnm_image *image,
                            mnm_image *cells);

/* Encode `codes->count` reference images (images[0 .. count - 1]) into the non-NULL arrays of *codes. */
MNM_API mnm_status mnm_encode(mnm_pipeline *pipeline, const mnm_image *images, mnm_codes *codes);

/* Generate request->count images (code mode) into out[0 .. count - 1]. */
MNM_API mnm_status mnm_generate(mnm_pipeline *pipeline, const mnm_generate_request *request, mnm_image *out);

/* ---------------------------------------------------------------- animation (img2gif) */

/* An animator of `static_image` (it gives background, shape and texture once; each frame gives
   the pose, and in feature mode the shape). Close it with mnm_animator_close. */
MNM_API mnm_status mnm_animator_open(mnm_pipeline *pipeline, const mnm_image *static_image, mnm_mode mode,
                                     mnm_animator **out);

/* Push one video frame (any size; the largest centred square is used) and get its animated
   S x S image in *out. */
MNM_API mnm_status mnm_animator_frame(mnm_animator *animator, const mnm_image *frame, mnm_image *out);

/* Close an animator (NULL: nothing to do). */
MNM_API mnm_status mnm_animator_close(mnm_animator *animator);

/* ---------------------------------------------------------------- images */

/* Decode an image file as the runtime and the mnm CLI do (PNG, JPEG, WebP, BMP, GIF, TIFF; EXIF
   orientation applied; transparency over white) into a library-allocated *out. */
MNM_API mnm_status mnm_image_load(const char *path, mnm_image *out);

/* Write an image file atomically, the format from the extension (.png, .jpg, ...), with the same
   encoder and settings as the mnm CLI: the same pixels give the same bytes. */
MNM_API mnm_status mnm_image_save(const char *path, const mnm_image *image);

/* Free the pixels of a library-allocated image and zero the struct. Images whose `owned` is NULL
   (your own buffers) are left alone; NULL is fine. Starts no Python. */
MNM_API void mnm_image_free(mnm_image *image);

#ifdef __cplusplus
}
#endif

#endif /* MNM_H */
