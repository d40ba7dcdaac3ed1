/*
 * mnm.h: the C API of mnm (MixNMatch mix-and-match and img2gif animation on an exported bundle).
 *
 * libmnm is a native library (C++17 inside, this header is plain C99) that runs a bundle's ONNX
 * graphs with ONNX Runtime, loaded at run time: no Python is involved. Build: `make cpp`; link:
 * `-lmnm`, `pkg-config --libs mnm` or CMake `find_package(mnm)` → `mnm::mnm` (docs/capi.md).
 *
 * Conventions
 * - Every function that can fail returns an mnm_status; MNM_OK is 0. After a failure,
 *   mnm_last_error() gives a one-line message for the calling thread.
 * - Handles (mnm_pipeline, mnm_animator) are opaque. A closed or unknown handle gives
 *   MNM_ERR_CLOSED, never a crash: handle values are never reused within a process.
 * - Images are RGB, 8 bits per channel, rows top to bottom: the pixel (x, y) channel k is at
 *   data[y * stride + 3 * x + k]. Inputs are borrowed for the call only (the library copies what
 *   it keeps). An output image is caller-provided when its data is not NULL (width and height must
 *   be the result's, stride >= 3 * width, size >= stride * (height - 1) + 3 * width) and
 *   library-allocated when data is NULL (free it with mnm_image_free).
 * - Strings passed in are UTF-8 (file names: as the OS takes them) and borrowed for the call.
 *   Strings returned are owned by the library and must never be freed by the caller; how long each
 *   lives is stated at its function.
 *
 * ABI: structs that can grow
 * Every options and request struct starts with `size_t struct_size`. Initialise it with the
 * struct's MNM_..._INIT macro (`mnm_mix_request r = MNM_MIX_REQUEST_INIT;`), which sets
 * struct_size = sizeof the struct as this header declares it and every other field to its default.
 * New fields are only ever appended, so:
 * - an app built against an older mnm.h (a smaller struct_size) keeps working with a newer library:
 *   the fields it does not know take their defaults;
 * - an app built against a newer mnm.h than the library (a struct_size the library does not know)
 *   gets MNM_ERR_ARGUMENT with a message naming both sizes; struct_size 0 (the macro was not used)
 *   is MNM_ERR_ARGUMENT too.
 * mnm_image and mnm_factor are fixed for the whole of ABI version 1 (they are passed in arrays).
 * MNM_VERSION_MAJOR is the soname's number (libmnm.so.1): it changes only when the ABI breaks.
 *
 * Threads
 * Every function may be called from any thread. One pipeline may be shared by many threads at once:
 * calls run concurrently and give the same results as the same calls made one after another.
 * mnm_last_error() is per thread. Closing a handle while other threads are inside calls on it is
 * safe: those calls finish, later calls get MNM_ERR_CLOSED, and the resources go when the last call
 * returns. Closing a pipeline stops its animators: their frames get MNM_ERR_CLOSED (close them as
 * usual).
 *
 * Fork
 * A child made by fork() may call mnm_version, mnm_status_name, mnm_last_error, mnm_image_free,
 * mnm_image_load and mnm_image_save. Handles opened before the fork belong to the parent: in the
 * child every call on them (closing included) returns MNM_ERR_CLOSED with a message that says so,
 * never hangs, and releases nothing (the parent's resources are not the child's to free). Once the
 * parent has started ONNX Runtime (opened a pipeline), mnm_pipeline_open in the child returns
 * MNM_ERR_BACKEND (ONNX Runtime's threads do not survive fork): run models in the parent, or
 * exec a new process. A process that forks before its first mnm_pipeline_open may use the library
 * fully in the child.
 *
 * Finding ONNX Runtime
 * mnm_pipeline_open loads libonnxruntime (ONNX Runtime 1.21 or newer: its C API version 21) once
 * per process: options.onnxruntime_library when given (that library only), else the MNM_ONNXRUNTIME
 * environment variable when set (that library only), else the library found when libmnm was built,
 * then "libonnxruntime.so.1" from the system's search path. The first library that loads is used for
 * the rest of the process. A library that is missing, is not ONNX Runtime or is too old gives
 * MNM_ERR_BACKEND with a message that says what was looked for where.
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

/* The version of this header. mnm_version() gives the library's (they may differ: an app may run
   on a newer library of the same major version). */
#define MNM_VERSION_MAJOR 1
#define MNM_VERSION_MINOR 0
#define MNM_VERSION_PATCH 0
#define MNM_VERSION_STRING "1.0.0"

typedef enum mnm_status {
    MNM_OK = 0,
    MNM_ERR_ARGUMENT = 1,    /* a NULL, a size, stride, count or enum value that does not fit, a bad factor
                                spec, a struct_size this library does not know */
    MNM_ERR_NOT_FOUND = 2,   /* a bundle folder or image file that does not exist */
    MNM_ERR_BUNDLE = 3,      /* the bundle cannot be used: bad manifest, sha256 mismatch, missing graph */
    MNM_ERR_UNSUPPORTED = 4, /* the bundle lacks what was asked (feature mode on a code-only bundle) */
    MNM_ERR_BACKEND = 5,     /* ONNX Runtime cannot be loaded, or the backend asked for cannot start here */
    MNM_ERR_CLOSED = 6,      /* the handle was closed, was never an open handle of that kind, or belongs
                                to the parent of a forked process */
    MNM_ERR_RUNTIME = 7,     /* the runtime refused the request (an undecodable image file, ...) */
    /* 8 is reserved: it was MNM_ERR_PYTHON in the Python-embedding library and is never returned. */
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
   file path decoded as mnm_image_load does), or neither (random; for the shape: sampled in code
   mode, taken from the pose reference in feature mode). Setting both is an error. */
typedef struct mnm_factor {
    const char *spec;
    const mnm_image *image;
    const double *box; /* NULL, or the object box x, y, w, h in pixels of `image` (the crop is 1.5 x its
                          larger side) */
} mnm_factor;

typedef struct mnm_pipeline_options {
    size_t struct_size;  /* sizeof(mnm_pipeline_options): use MNM_PIPELINE_OPTIONS_INIT */
    const char *backend; /* NULL or "auto" (the fastest that starts), "ort-cpu", "ort-cuda", "ort-trt" */
    int32_t threads;     /* ONNX Runtime CPU threads; 0: the runtime's default (physical cores) */
    int32_t max_batch;   /* most images per graph run; 0: 16 */
    const char *precision; /* NULL or "auto" (INT8 graphs where the bundle has them, else fp32), "fp32",
                              "fp16", "int8" (refused on a bundle without INT8 graphs) */
    const char *fit;       /* NULL or "crop": references without a box give their centred square;
                              "squash": the whole image resized to a square */
    const char *onnxruntime_library; /* NULL, or the path of libonnxruntime.so to load (see "Finding
                                        ONNX Runtime" above) */
} mnm_pipeline_options;

#define MNM_PIPELINE_OPTIONS_INIT { sizeof(mnm_pipeline_options), NULL, 0, 0, NULL, NULL, NULL }

#define MNM_FACTOR_EMPTY { NULL, NULL, NULL }

typedef struct mnm_mix_request {
    size_t struct_size;    /* sizeof(mnm_mix_request): use MNM_MIX_REQUEST_INIT */
    mnm_factor background; /* b and z_bg */
    mnm_factor pose;       /* z_pose (code mode); shape and pose (feature mode: must be an image) */
    mnm_factor shape;      /* p (code mode); feature mode: leave empty or give the pose's image */
    mnm_factor texture;    /* c */
    mnm_mode mode;
    mnm_stitch stitch;
    uint32_t seed;         /* random factors: the same seed gives the same sample (from the library's own
                              generator: the same distributions as the Python runtime, not its samples) */
} mnm_mix_request;

#define MNM_MIX_REQUEST_INIT                                                                       \
    { sizeof(mnm_mix_request), MNM_FACTOR_EMPTY, MNM_FACTOR_EMPTY, MNM_FACTOR_EMPTY, MNM_FACTOR_EMPTY, \
      MNM_MODE_CODE, MNM_STITCH_NONE, 0 }

/* A grid: every combination of the listed factors; an empty list (count 0) is one random factor
   (the shape: none, see mnm_factor). Cells are in the order background, pose, shape, texture (the
   texture varies fastest). In the labelled image the last factor with several entries runs along
   the columns, the others along the rows. */
typedef struct mnm_grid_request {
    size_t struct_size; /* sizeof(mnm_grid_request): use MNM_GRID_REQUEST_INIT */
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
    mnm_stitch stitch;
} mnm_grid_request;

#define MNM_GRID_REQUEST_INIT \
    { sizeof(mnm_grid_request), NULL, 0, NULL, 0, NULL, 0, NULL, 0, MNM_MODE_CODE, 0, MNM_STITCH_NONE }

/* Codes of `count` reference images, written by mnm_encode into caller-owned arrays of
   count x dim floats (row-major; dims from mnm_info). A NULL array is not computed. */
typedef struct mnm_codes {
    size_t struct_size; /* sizeof(mnm_codes): use MNM_CODES_INIT */
    int32_t count;
    float *z; /* z_dim: the image's z (as background: z_bg; as pose: z_pose) */
    float *b; /* b_dim: background category probabilities */
    float *p; /* p_dim: shape */
    float *c; /* c_dim: texture */
} mnm_codes;

#define MNM_CODES_INIT { sizeof(mnm_codes), 0, NULL, NULL, NULL, NULL }

/* Inputs of mnm_generate: `count` rows of each (row-major). b, p, c: one-hot or probabilities. */
typedef struct mnm_generate_request {
    size_t struct_size;  /* sizeof(mnm_generate_request): use MNM_GENERATE_REQUEST_INIT */
    int32_t count;
    const float *z_bg;   /* count x z_dim */
    const float *b;      /* count x b_dim */
    const float *z_pose; /* count x z_dim */
    const float *p;      /* count x p_dim */
    const float *c;      /* count x c_dim */
} mnm_generate_request;

#define MNM_GENERATE_REQUEST_INIT { sizeof(mnm_generate_request), 0, NULL, NULL, NULL, NULL, NULL }

/* How an animator runs: the mode and the object boxes (x, y, w, h in pixels; NULL: none). */
typedef struct mnm_animator_options {
    size_t struct_size;       /* sizeof(mnm_animator_options): use MNM_ANIMATOR_OPTIONS_INIT */
    mnm_mode mode;
    const double *static_box; /* the object's box in the static image */
    const double *frame_box;  /* the object's box in every frame */
} mnm_animator_options;

#define MNM_ANIMATOR_OPTIONS_INIT { sizeof(mnm_animator_options), MNM_MODE_CODE, NULL, NULL }

/* What a pipeline runs on, filled by mnm_pipeline_info. The strings and the graph list belong to
   the pipeline and stay valid until mnm_pipeline_close. */
typedef struct mnm_info {
    size_t struct_size;  /* sizeof(mnm_info): use MNM_INFO_INIT */
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
    const char *backend;       /* the backend that runs, e.g. "ort-cpu (onnxruntime 1.22.0, fp32, 2 threads)" */
    const char *version;       /* the library's version (as mnm_version()) */
    const char *onnxruntime_library; /* the path of the libonnxruntime that was loaded */
} mnm_info;

#define MNM_INFO_INIT { sizeof(mnm_info), 0, 0, 0, 0, 0, 0, 0, 0, NULL, NULL, NULL, NULL, NULL }

typedef struct mnm_pipeline mnm_pipeline;
typedef struct mnm_animator mnm_animator;

/* ---------------------------------------------------------------- the library */

/* The version of this library ("1.0.0"). Static string: never free it. */
MNM_API const char *mnm_version(void);

/* The message of the calling thread's last failed call ("" after a success). Owned by the
   library (never free it), valid until the next mnm call on this thread; freed when the thread
   exits. Never NULL. */
MNM_API const char *mnm_last_error(void);

/* The name of a status ("MNM_ERR_CLOSED"). Static string; unknown values (8 included) give
   "MNM_ERR_UNKNOWN". */
MNM_API const char *mnm_status_name(mnm_status status);

/* ---------------------------------------------------------------- pipelines */

/* Open a pipeline on the bundle folder `bundle` (every file's sha256 is verified). `options` may be
   NULL (defaults). On success *out is a new handle: close it with mnm_pipeline_close. */
MNM_API mnm_status mnm_pipeline_open(const char *bundle, const mnm_pipeline_options *options, mnm_pipeline **out);

/* Close a pipeline (NULL: nothing to do). Its animators stop working (MNM_ERR_CLOSED) until closed. */
MNM_API mnm_status mnm_pipeline_close(mnm_pipeline *pipeline);

/* Fill *out (its struct_size set, e.g. by MNM_INFO_INIT) with what the pipeline runs on. */
MNM_API mnm_status mnm_pipeline_info(mnm_pipeline *pipeline, mnm_info *out);

/* ---------------------------------------------------------------- mix and match */

/* One S x S mix into *out (caller-provided or library-allocated, see the conventions). */
MNM_API mnm_status mnm_mix(mnm_pipeline *pipeline, const mnm_mix_request *request, mnm_image *out);

/* The labelled grid image into *image (library-allocated when its data is NULL), and, when
   `cells` is not NULL, each cell into cells[0 .. n - 1] (n = the product of the list lengths, a
   count of 0 counted as 1; each caller-provided or library-allocated). */
MNM_API mnm_status mnm_grid(mnm_pipeline *pipeline, const mnm_grid_request *request, mnm_image *image,
                            mnm_image *cells);

/* Encode `codes->count` reference images (images[0 .. count - 1]) into the non-NULL arrays of *codes. */
MNM_API mnm_status mnm_encode(mnm_pipeline *pipeline, const mnm_image *images, mnm_codes *codes);

/* Generate request->count images (code mode) into out[0 .. count - 1]. */
MNM_API mnm_status mnm_generate(mnm_pipeline *pipeline, const mnm_generate_request *request, mnm_image *out);

/* ---------------------------------------------------------------- animation (img2gif) */

/* An animator of `static_image` (it gives background, shape and texture once; each frame gives
   the pose, and in feature mode the shape). `options` may be NULL (code mode, no boxes). Close it
   with mnm_animator_close. */
MNM_API mnm_status mnm_animator_open(mnm_pipeline *pipeline, const mnm_image *static_image,
                                     const mnm_animator_options *options, mnm_animator **out);

/* Push one video frame (any size; the largest centred square is used, or the frame box) and get its
   animated S x S image in *out. */
MNM_API mnm_status mnm_animator_frame(mnm_animator *animator, const mnm_image *frame, mnm_image *out);

/* Close an animator (NULL: nothing to do). */
MNM_API mnm_status mnm_animator_close(mnm_animator *animator);

/* ---------------------------------------------------------------- images */

/* Decode an image file (PNG, JPEG, WebP, BMP, TIFF, recognised by their first bytes; GIF too where
   the linked OpenCV decodes it) into a library-allocated *out: transparency over white and 16-bit
   values as the mnm CLI does, a JPEG's EXIF orientation applied. At most 100 megapixels. Nothing
   else is ever decoded, and a name that claims one of these formats must be that format (a TIFF
   named .png: MNM_ERR_RUNTIME). */
MNM_API mnm_status mnm_image_load(const char *path, mnm_image *out);

/* Write an image file atomically (a temporary file renamed into place), the format from the
   extension (.png, .jpg, .jpeg, .webp, .bmp, .tif, .tiff; the mnm CLI also
   writes .gif, which this library refuses with MNM_ERR_ARGUMENT). */
MNM_API mnm_status mnm_image_save(const char *path, const mnm_image *image);

/* Free the pixels of a library-allocated image and zero the struct. Images whose `owned` is NULL
   (your own buffers) are left alone; NULL is fine. */
MNM_API void mnm_image_free(mnm_image *image);

#ifdef __cplusplus
}
#endif

#endif /* MNM_H */
