/* Every function of mnm.h from plain C: the results, and the error paths with their status and
 * message; the growable structs (an older, smaller one accepted, a newer one refused); ONNX Runtime
 * missing or too old; a forked child. Built and run by tests/capi/test_c_api.py, which compares the
 * images this program saves in WORKDIR with the Python runtime's:
 *
 *   c_api_test BUNDLE CODE_ONLY_BUNDLE DAMAGED_BUNDLE WORKDIR NOT_ORT_LIBRARY OLD_ORT_LIBRARY
 *
 * NOT_ORT_LIBRARY is a shared library without OrtGetApiBase, OLD_ORT_LIBRARY one whose GetApi offers
 * no C API this new. Prints every error message it provokes; exits 1 naming each failed check. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "mnm.h"

static int checks, failures;
static const char *workdir;

static void check_that(int ok, int line, const char *what)
{
    checks++;
    if (!ok) {
        failures++;
        fprintf(stderr, "line %d: failed: %s\n", line, what);
    }
}
#define CHECK(condition) check_that((condition) != 0, __LINE__, #condition)

/* The call returned `want`; its message is "" for MNM_OK, else one line containing `words`. */
static void expect(mnm_status got, mnm_status want, const char *words, int line, const char *call)
{
    const char *message = mnm_last_error();
    int ok = got == want && (want == MNM_OK ? message[0] == '\0'
                                            : strstr(message, words) != NULL && strchr(message, '\n') == NULL);
    checks++;
    if (want != MNM_OK)
        printf("%-20s %s\n", mnm_status_name(got), message);
    if (!ok) {
        failures++;
        fprintf(stderr, "line %d: %s gave %s \"%s\", wanted %s with \"%s\"\n", line, call, mnm_status_name(got),
                message, mnm_status_name(want), words);
    }
}
#define EXPECT(call, want, words) expect((call), (want), (words), __LINE__, #call)

/* A w x h test picture (a gradient and a blob) whose rows are `pad` bytes longer than the pixels;
   the padding holds 0xAB. Our own buffer: owned stays NULL. */
static mnm_image picture(int w, int h, int pad, int seed)
{
    int stride = 3 * w + pad;
    uint8_t *data = malloc((size_t)stride * (size_t)h);
    memset(data, 0xAB, (size_t)stride * (size_t)h);
    for (int y = 0; y < h; ++y)
        for (int x = 0; x < w; ++x) {
            int blob = (x - w / 2) * (x - w / 2) + (y - h / 2) * (y - h / 2) < w * h / 10;
            for (int k = 0; k < 3; ++k)
                data[y * stride + 3 * x + k] = (uint8_t)(x * (3 + seed) + y * (5 + k) + 40 * seed + (blob ? 90 + 50 * k : 0));
        }
    mnm_image image = {data, (size_t)stride * (size_t)h, w, h, stride, NULL};
    return image;
}

static int same_pixels(const mnm_image *a, const mnm_image *b)
{
    if (a->width != b->width || a->height != b->height)
        return 0;
    for (int y = 0; y < a->height; ++y)
        if (memcmp(a->data + (size_t)y * (size_t)a->stride, b->data + (size_t)y * (size_t)b->stride,
                   (size_t)(3 * a->width)) != 0)
            return 0;
    return 1;
}

static int padding_intact(const mnm_image *image)
{
    for (int y = 0; y < image->height; ++y)
        for (int i = 3 * image->width; i < image->stride; ++i)
            if (image->data[y * image->stride + i] != 0xAB)
                return 0;
    return 1;
}

static void save(const char *name, const mnm_image *image)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", workdir, name);
    EXPECT(mnm_image_save(path, image), MNM_OK, "");
}

static float row_sum(const float *row, int n)
{
    float sum = 0;
    for (int i = 0; i < n; ++i)
        sum += row[i];
    return sum;
}

static mnm_factor spec(const char *text)
{
    mnm_factor factor = {text, NULL, NULL};
    return factor;
}

static mnm_factor image_factor(const mnm_image *image)
{
    mnm_factor factor = {NULL, image, NULL};
    return factor;
}

static mnm_mix_request mix_of(mnm_factor background, mnm_factor pose, mnm_factor shape, mnm_factor texture)
{
    mnm_mix_request request = MNM_MIX_REQUEST_INIT;
    request.background = background;
    request.pose = pose;
    request.shape = shape;
    request.texture = texture;
    return request;
}

/* In a forked child, the parent's handles are refused and models cannot start; image files work.
   Returns the child's exit status: 0 when every call in it gave what it should, quickly. */
static int forked_child_status(mnm_pipeline *pipe, const char *bundle, const mnm_mix_request *request,
                               const char *image_path)
{
    pid_t child = fork();
    if (child == 0) {
        mnm_image out = {0}, loaded = {0};
        mnm_pipeline *again = NULL;
        int ok = mnm_mix(pipe, request, &out) == MNM_ERR_CLOSED &&
                 strstr(mnm_last_error(), "opened by the parent process before fork()") != NULL;
        ok = ok && mnm_pipeline_close(pipe) == MNM_ERR_CLOSED;
        ok = ok && mnm_pipeline_open(bundle, NULL, &again) == MNM_ERR_BACKEND &&
             strstr(mnm_last_error(), "forked child") != NULL;
        ok = ok && mnm_image_load(image_path, &loaded) == MNM_OK && loaded.width > 0;
        mnm_image_free(&loaded);
        _exit(ok ? 0 : 3);
    }
    for (int waited = 0; waited < 300; ++waited) { /* 30 s at most: a hang is a failure, not a stuck test */
        int status = 0;
        if (waitpid(child, &status, WNOHANG) == child)
            return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        struct timespec tenth = {0, 100000000};
        nanosleep(&tenth, NULL);
    }
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
    return -1;
}

int main(int argc, char **argv)
{
    if (argc != 7) {
        fprintf(stderr, "usage: c_api_test BUNDLE CODE_ONLY_BUNDLE DAMAGED_BUNDLE WORKDIR NOT_ORT OLD_ORT\n");
        return 2;
    }
    const char *bundle = argv[1], *code_only = argv[2], *damaged = argv[3], *not_ort = argv[5], *old_ort = argv[6];
    char path[4096];
    workdir = argv[4];

    /* ---- the library */
    printf("version %s\n", mnm_version());
    CHECK(strcmp(mnm_version(), MNM_VERSION_STRING) == 0);
    CHECK(strcmp(mnm_last_error(), "") == 0);
    CHECK(strcmp(mnm_status_name(MNM_ERR_CLOSED), "MNM_ERR_CLOSED") == 0);
    CHECK(strcmp(mnm_status_name((mnm_status)99), "MNM_ERR_UNKNOWN") == 0);
    CHECK(strcmp(mnm_status_name((mnm_status)8), "MNM_ERR_UNKNOWN") == 0); /* reserved: was MNM_ERR_PYTHON */
    mnm_image_free(NULL);
    mnm_pipeline *pipe = NULL, *small = NULL;

    /* ---- ONNX Runtime missing or too old (before any library loads: the first one that does is kept) */
    mnm_pipeline_options options = MNM_PIPELINE_OPTIONS_INIT;
    options.onnxruntime_library = "/nonexistent/libonnxruntime.so.1";
    EXPECT(mnm_pipeline_open(bundle, &options, &pipe), MNM_ERR_BACKEND,
           "/nonexistent/libonnxruntime.so.1 (options.onnxruntime_library): ");
    options.onnxruntime_library = not_ort;
    EXPECT(mnm_pipeline_open(bundle, &options, &pipe), MNM_ERR_BACKEND, "has no OrtGetApiBase");
    options.onnxruntime_library = old_ort;
    EXPECT(mnm_pipeline_open(bundle, &options, &pipe), MNM_ERR_BACKEND, "ONNX Runtime 1.10.0 is too old");
    CHECK(pipe == NULL);
    options.onnxruntime_library = NULL; /* from here: MNM_ONNXRUNTIME or the build's library */

    /* ---- growable structs */
    options.struct_size = 0;
    EXPECT(mnm_pipeline_open(bundle, &options, &pipe), MNM_ERR_ARGUMENT,
           "options: struct_size is 0; initialise the struct with MNM_PIPELINE_OPTIONS_INIT");
    options.struct_size = sizeof options + 8; /* an app built against a newer mnm.h */
    EXPECT(mnm_pipeline_open(bundle, &options, &pipe), MNM_ERR_ARGUMENT, "the app was built against a newer mnm.h");
    options.struct_size = offsetof(mnm_pipeline_options, fit); /* an older app: fit and the library path unknown */
    options.fit = "no-such-fit"; /* beyond its struct: never read */
    EXPECT(mnm_pipeline_open(bundle, &options, &pipe), MNM_OK, "");
    EXPECT(mnm_pipeline_close(pipe), MNM_OK, "");
    pipe = NULL;
    options.struct_size = sizeof options;
    EXPECT(mnm_pipeline_open(bundle, &options, &pipe), MNM_ERR_ARGUMENT, "options.fit must be one of crop, squash");
    options.fit = NULL;

    /* ---- pipelines */
    EXPECT(mnm_pipeline_open("/nonexistent/bundle", NULL, &pipe), MNM_ERR_NOT_FOUND, "bundle folder not found");
    EXPECT(mnm_pipeline_open(damaged, NULL, &pipe), MNM_ERR_BUNDLE, "sha256 mismatch");
    EXPECT(mnm_pipeline_open(NULL, NULL, &pipe), MNM_ERR_ARGUMENT, "bundle is NULL");
    EXPECT(mnm_pipeline_open(bundle, NULL, NULL), MNM_ERR_ARGUMENT, "out is NULL");
    options.backend = "warp-drive";
    options.threads = 1;
    EXPECT(mnm_pipeline_open(bundle, &options, &pipe), MNM_ERR_ARGUMENT, "unknown backend 'warp-drive'");
    options.backend = "tensorrt"; /* native TensorRT engines are the Python runtime's */
    EXPECT(mnm_pipeline_open(bundle, &options, &pipe), MNM_ERR_BACKEND, "backend tensorrt cannot run here");
    options.backend = "ort-cuda"; /* the CPU build of onnxruntime */
    EXPECT(mnm_pipeline_open(bundle, &options, &pipe), MNM_ERR_BACKEND, "backend ort-cuda cannot run here");
    options.backend = NULL;
    options.threads = -1;
    EXPECT(mnm_pipeline_open(bundle, &options, &pipe), MNM_ERR_ARGUMENT, "options.threads must be 0");
    options.threads = 1;
    options.precision = "int4";
    EXPECT(mnm_pipeline_open(bundle, &options, &pipe), MNM_ERR_ARGUMENT, "options.precision must be one of");
    options.precision = "int8"; /* the demo bundle has fp32 graphs only */
    EXPECT(mnm_pipeline_open(bundle, &options, &pipe), MNM_ERR_ARGUMENT, "the bundle has no INT8 graphs");
    options.precision = "fp32";
    options.max_batch = 4;
    EXPECT(mnm_pipeline_open(bundle, &options, &pipe), MNM_OK, "");
    EXPECT(mnm_pipeline_open(code_only, NULL, &small), MNM_OK, "");
    CHECK(pipe != NULL && small != NULL && pipe != small);

    mnm_info info = MNM_INFO_INIT;
    EXPECT(mnm_pipeline_info(pipe, &info), MNM_OK, "");
    printf("info %d %d %d %d %d %d %d %d\n", info.image_size, info.z_dim, info.b_dim, info.p_dim, info.c_dim,
           info.has_code_mode, info.has_feature_mode, info.graph_count);
    printf("bundle %s\nbackend %s\nruntime %s\nonnxruntime %s\n", info.bundle, info.backend, info.version,
           info.onnxruntime_library);
    for (int i = 0; i < info.graph_count; ++i)
        printf("graph %s\n", info.graphs[i]);
    EXPECT(mnm_pipeline_info(pipe, NULL), MNM_ERR_ARGUMENT, "out is NULL");
    mnm_info older;
    memset(&older, 0x5A, sizeof older);
    older.struct_size = offsetof(mnm_info, onnxruntime_library); /* an older app's mnm_info: filled as far as it goes */
    EXPECT(mnm_pipeline_info(pipe, &older), MNM_OK, "");
    CHECK(older.image_size == info.image_size && strcmp(older.backend, info.backend) == 0);
    CHECK(*(const unsigned char *)&older.onnxruntime_library == 0x5A);
    mnm_info small_info = MNM_INFO_INIT;
    EXPECT(mnm_pipeline_info(small, &small_info), MNM_OK, "");
    CHECK(small_info.has_code_mode == 1 && small_info.has_feature_mode == 0);
    const int S = info.image_size;

    /* ---- mix: specs, into a library-allocated image and into a padded caller buffer */
    mnm_mix_request request = mix_of(spec("seed:1"), spec("seed:2"), spec("code:1"), spec("code:3"));
    mnm_image mixed = {0}, again = {0};
    EXPECT(mnm_mix(pipe, &request, &mixed), MNM_OK, "");
    CHECK(mixed.width == S && mixed.height == S && mixed.stride == 3 * S && mixed.size == (size_t)(3 * S * S));
    CHECK(mixed.owned != NULL && mixed.data != NULL);
    save("mix_specs.png", &mixed);
    EXPECT(mnm_mix(pipe, &request, &again), MNM_OK, "");
    CHECK(same_pixels(&mixed, &again));
    mnm_image padded = picture(S, S, 5, 0);
    EXPECT(mnm_mix(pipe, &request, &padded), MNM_OK, "");
    CHECK(same_pixels(&mixed, &padded) && padding_intact(&padded) && padded.owned == NULL);
    mnm_image_free(&again);
    CHECK(again.data == NULL && again.owned == NULL && again.width == 0);
    mnm_mix_request newer = request, old = request;
    newer.struct_size = sizeof request + 16;
    EXPECT(mnm_mix(pipe, &newer, &again), MNM_ERR_ARGUMENT, "request: struct_size");
    old.struct_size = offsetof(mnm_mix_request, seed); /* an app from before `seed`: seed 0 */
    old.seed = 12345;
    EXPECT(mnm_mix(pipe, &old, &again), MNM_OK, "");
    CHECK(same_pixels(&mixed, &again));
    mnm_image_free(&again);

    /* ---- mix: caller images (strided), code and feature mode, a box */
    mnm_image bg = picture(80, 60, 0, 1), pose = picture(50, 70, 7, 2), texture = picture(64, 64, 3, 3);
    save("ref_background.png", &bg);
    save("ref_pose.png", &pose);
    save("ref_texture.png", &texture);
    request.background = image_factor(&bg);
    request.pose = image_factor(&pose);
    request.shape = image_factor(&pose);
    request.texture = image_factor(&texture);
    mnm_image out = {0};
    EXPECT(mnm_mix(pipe, &request, &out), MNM_OK, "");
    save("mix_images_code.png", &out);
    mnm_image_free(&out);
    request.mode = MNM_MODE_FEATURE;
    EXPECT(mnm_mix(pipe, &request, &out), MNM_OK, "");
    save("mix_images_feature.png", &out);
    mnm_image_free(&out);
    request.mode = MNM_MODE_CODE;
    double box[4] = {10, 8, 30, 40};
    request.background.box = box;
    request.stitch = MNM_STITCH_BACKGROUND;
    EXPECT(mnm_mix(pipe, &request, &out), MNM_OK, "");
    save("mix_box_stitch.png", &out);
    mnm_image_free(&out);
    request.background.box = NULL;
    request.stitch = MNM_STITCH_NONE;

    /* ---- mix: what the caller can get wrong */
    request.mode = (mnm_mode)7;
    EXPECT(mnm_mix(pipe, &request, &out), MNM_ERR_ARGUMENT, "mode must be MNM_MODE_CODE (0) or MNM_MODE_FEATURE (1)");
    request.mode = MNM_MODE_FEATURE;
    EXPECT(mnm_mix(small, &request, &out), MNM_ERR_UNSUPPORTED, "the bundle has no feature mode");
    request.shape = image_factor(&texture);
    EXPECT(mnm_mix(pipe, &request, &out), MNM_ERR_RUNTIME, "shape and pose come from one image");
    request.mode = MNM_MODE_CODE;
    request.shape = image_factor(&pose);
    request.stitch = (mnm_stitch)9;
    EXPECT(mnm_mix(pipe, &request, &out), MNM_ERR_ARGUMENT, "stitch must be");
    request.stitch = MNM_STITCH_NONE;
    mnm_image corrupt = bg;
    corrupt.size = 100;
    request.background = image_factor(&corrupt);
    EXPECT(mnm_mix(pipe, &request, &out), MNM_ERR_ARGUMENT, "background: buffer size 100 is too small for 80x60");
    corrupt.size = bg.size;
    corrupt.stride = 10;
    EXPECT(mnm_mix(pipe, &request, &out), MNM_ERR_ARGUMENT, "stride 10 is less than 3 x width");
    corrupt.stride = bg.stride;
    corrupt.width = 0;
    EXPECT(mnm_mix(pipe, &request, &out), MNM_ERR_ARGUMENT, "width and height must be positive");
    corrupt.width = bg.width;
    corrupt.data = NULL;
    EXPECT(mnm_mix(pipe, &request, &out), MNM_ERR_ARGUMENT, "background: data is NULL");
    corrupt.data = bg.data; /* the valid background's pixels, but a size too small: checked on its own */
    corrupt.size = 100;
    request.background = image_factor(&bg);
    request.texture = image_factor(&corrupt);
    EXPECT(mnm_mix(pipe, &request, &out), MNM_ERR_ARGUMENT, "texture: buffer size 100 is too small");
    request.texture = image_factor(&texture);
    corrupt.size = bg.size;
    corrupt.data = NULL;
    request.background = image_factor(&bg);
    request.background.spec = "random";
    EXPECT(mnm_mix(pipe, &request, &out), MNM_ERR_ARGUMENT, "background: give a spec or an image, not both");
    request.background = spec("random");
    request.background.box = box;
    EXPECT(mnm_mix(pipe, &request, &out), MNM_ERR_ARGUMENT, "background: a box needs an image");
    request.background = image_factor(&bg);
    double outside[4] = {70, 50, 30, 30};
    request.background.box = outside;
    EXPECT(mnm_mix(pipe, &request, &out), MNM_ERR_ARGUMENT, "extends outside the 80x60 image");
    request.background = image_factor(&bg);
    request.shape = spec("seed:4");
    EXPECT(mnm_mix(pipe, &request, &out), MNM_ERR_ARGUMENT, "the shape has no z");
    request.shape = spec("/nonexistent/shape.png");
    EXPECT(mnm_mix(pipe, &request, &out), MNM_ERR_NOT_FOUND, "reference image not found");
    snprintf(path, sizeof path, "%s/not_an_image.png", workdir);
    FILE *text = fopen(path, "w");
    fputs("this is text, not a PNG\n", text);
    fclose(text);
    request.shape = spec(path);
    EXPECT(mnm_mix(pipe, &request, &out), MNM_ERR_RUNTIME, "not a recognised image");
    request.shape = image_factor(&pose);
    mnm_image tiny = picture(16, 16, 0, 0);
    EXPECT(mnm_mix(pipe, &request, &tiny), MNM_ERR_ARGUMENT, "the result is 32x32 but the buffer is 16x16");
    EXPECT(mnm_mix(pipe, &request, NULL), MNM_ERR_ARGUMENT, "out is NULL");
    EXPECT(mnm_mix(pipe, NULL, &out), MNM_ERR_ARGUMENT, "request is NULL");
    EXPECT(mnm_mix(NULL, &request, &out), MNM_ERR_ARGUMENT, "pipeline is NULL");
    EXPECT(mnm_mix((mnm_pipeline *)(uintptr_t)987654, &request, &out), MNM_ERR_CLOSED, "not an open pipeline");
    CHECK(out.data == NULL); /* no failed call allocated anything */

    /* ---- grid: 2 backgrounds x 3 textures; each cell is the mix of its factors */
    mnm_factor backgrounds[2] = {image_factor(&bg), image_factor(&pose)};
    mnm_factor textures[3] = {spec("code:0"), spec("code:7"), image_factor(&texture)};
    mnm_factor grid_pose = image_factor(&pose), grid_shape = spec("code:2");
    mnm_grid_request grid = MNM_GRID_REQUEST_INIT;
    grid.background = backgrounds;
    grid.n_background = 2;
    grid.pose = &grid_pose;
    grid.n_pose = 1;
    grid.shape = &grid_shape;
    grid.n_shape = 1;
    grid.texture = textures;
    grid.n_texture = 3;
    mnm_image labelled = {0}, cells[6];
    memset(cells, 0, sizeof cells);
    EXPECT(mnm_grid(pipe, &grid, &labelled, cells), MNM_OK, "");
    CHECK(labelled.width > 3 * S && labelled.height > 2 * S && labelled.owned != NULL);
    save("grid.png", &labelled);
    for (int i = 0; i < 6; ++i) {
        mnm_mix_request one = mix_of(backgrounds[i / 3], grid_pose, grid_shape, textures[i % 3]);
        mnm_image single = {0};
        EXPECT(mnm_mix(pipe, &one, &single), MNM_OK, "");
        CHECK(same_pixels(&cells[i], &single));
        mnm_image_free(&single);
        mnm_image_free(&cells[i]);
    }
    mnm_image_free(&labelled);
    EXPECT(mnm_grid(pipe, &grid, &labelled, NULL), MNM_OK, "");
    mnm_image_free(&labelled);
    grid.n_texture = -1;
    EXPECT(mnm_grid(pipe, &grid, &labelled, NULL), MNM_ERR_ARGUMENT, "n_texture must be 0 or more");
    grid.n_texture = 3;
    grid.texture = NULL;
    EXPECT(mnm_grid(pipe, &grid, &labelled, NULL), MNM_ERR_ARGUMENT, "texture is NULL but n_texture is 3");
    grid.texture = textures;
    grid.mode = (mnm_mode)-1;
    EXPECT(mnm_grid(pipe, &grid, &labelled, NULL), MNM_ERR_ARGUMENT, "mode must be");
    grid.mode = MNM_MODE_CODE;
    EXPECT(mnm_grid(pipe, &grid, NULL, NULL), MNM_ERR_ARGUMENT, "image is NULL");

    /* ---- encode, then generate from the codes: the mix of the same references */
    mnm_image refs[2] = {bg, pose};
    float *z = calloc(2 * (size_t)info.z_dim, sizeof *z), *b = calloc(2 * (size_t)info.b_dim, sizeof *b);
    float *p = calloc(2 * (size_t)info.p_dim, sizeof *p), *c = calloc(2 * (size_t)info.c_dim, sizeof *c);
    mnm_codes codes = MNM_CODES_INIT;
    codes.count = 2;
    codes.z = z;
    codes.b = b;
    codes.p = p;
    codes.c = c;
    EXPECT(mnm_encode(pipe, refs, &codes), MNM_OK, "");
    for (int i = 0; i < 2; ++i) {
        CHECK(fabsf(row_sum(b + i * info.b_dim, info.b_dim) - 1.0f) < 1e-4f);
        CHECK(fabsf(row_sum(p + i * info.p_dim, info.p_dim) - 1.0f) < 1e-4f);
        CHECK(fabsf(row_sum(c + i * info.c_dim, info.c_dim) - 1.0f) < 1e-4f);
    }
    CHECK(memcmp(z, z + info.z_dim, (size_t)info.z_dim * sizeof *z) != 0);
    mnm_generate_request generate = MNM_GENERATE_REQUEST_INIT;
    generate.count = 1;
    generate.z_bg = z;
    generate.b = b;
    generate.z_pose = z + info.z_dim;
    generate.p = p + info.p_dim;
    generate.c = c;
    mnm_image generated = {0};
    EXPECT(mnm_generate(pipe, &generate, &generated), MNM_OK, "");
    mnm_mix_request same = mix_of(image_factor(&bg), image_factor(&pose), image_factor(&pose), image_factor(&bg));
    EXPECT(mnm_mix(pipe, &same, &out), MNM_OK, "");
    CHECK(same_pixels(&generated, &out));
    mnm_image_free(&out);
    mnm_image_free(&generated);
    mnm_image two[2] = {picture(S, S, 1, 0), {0}};
    generate.count = 2;
    generate.z_pose = z; /* two rows of each code: both references */
    generate.p = p;
    EXPECT(mnm_generate(pipe, &generate, two), MNM_OK, "");
    CHECK(two[0].owned == NULL && two[1].owned != NULL && padding_intact(&two[0]));
    mnm_image_free(&two[1]);
    codes.b = codes.p = codes.c = NULL;
    EXPECT(mnm_encode(pipe, refs, &codes), MNM_OK, ""); /* z only */
    codes.z = NULL;
    EXPECT(mnm_encode(pipe, refs, &codes), MNM_ERR_ARGUMENT, "z, b, p and c are all NULL");
    codes.z = z;
    codes.count = 0;
    EXPECT(mnm_encode(pipe, refs, &codes), MNM_ERR_ARGUMENT, "codes.count must be positive");
    codes.count = 1;
    EXPECT(mnm_encode(pipe, &corrupt, &codes), MNM_ERR_ARGUMENT, "images[0]: data is NULL");
    generate.count = 1;
    z[0] = NAN;
    EXPECT(mnm_generate(pipe, &generate, &out), MNM_ERR_ARGUMENT, "request.z_bg: contains NaN or infinity");
    z[0] = 0;
    generate.b = NULL;
    EXPECT(mnm_generate(pipe, &generate, &out), MNM_ERR_ARGUMENT, "request.b is NULL");
    generate.count = 0;
    EXPECT(mnm_generate(pipe, &generate, &out), MNM_ERR_ARGUMENT, "request.count must be positive");

    /* ---- animators */
    mnm_animator *code_animator = NULL, *feature_animator = NULL;
    mnm_animator_options feature = MNM_ANIMATOR_OPTIONS_INIT, bad_mode = MNM_ANIMATOR_OPTIONS_INIT;
    feature.mode = MNM_MODE_FEATURE;
    bad_mode.mode = (mnm_mode)5;
    EXPECT(mnm_animator_open(pipe, &bg, NULL, &code_animator), MNM_OK, "");
    EXPECT(mnm_animator_open(pipe, &bg, &feature, &feature_animator), MNM_OK, "");
    mnm_image frame = picture(96, 72, 2, 4);
    save("frame.png", &frame);
    EXPECT(mnm_animator_frame(code_animator, &frame, &out), MNM_OK, "");
    save("animated_code.png", &out);
    mnm_image_free(&out);
    EXPECT(mnm_animator_frame(feature_animator, &frame, &out), MNM_OK, "");
    save("animated_feature.png", &out);
    mnm_image_free(&out);
    mnm_animator *unused = NULL;
    EXPECT(mnm_animator_open(pipe, &bg, &bad_mode, &unused), MNM_ERR_ARGUMENT, "mode must be");
    EXPECT(mnm_animator_open(small, &bg, &feature, &unused), MNM_ERR_UNSUPPORTED, "no feature mode");
    EXPECT(mnm_animator_open(pipe, NULL, NULL, &unused), MNM_ERR_ARGUMENT, "static_image is NULL");
    feature.frame_box = outside; /* checked against each frame */
    EXPECT(mnm_animator_open(pipe, &bg, &feature, &unused), MNM_OK, "");
    EXPECT(mnm_animator_frame(unused, &tiny, &out), MNM_ERR_ARGUMENT, "extends outside the 16x16 image");
    EXPECT(mnm_animator_close(unused), MNM_OK, "");
    EXPECT(mnm_animator_frame(code_animator, &corrupt, &out), MNM_ERR_ARGUMENT, "frame: data is NULL");
    EXPECT(mnm_animator_frame((mnm_animator *)pipe, &frame, &out), MNM_ERR_CLOSED, "not an open animator");
    EXPECT(mnm_animator_close(feature_animator), MNM_OK, "");
    EXPECT(mnm_animator_close(feature_animator), MNM_ERR_CLOSED, "not an open animator");
    EXPECT(mnm_animator_frame(feature_animator, &frame, &out), MNM_ERR_CLOSED, "not an open animator");
    EXPECT(mnm_animator_close(NULL), MNM_OK, "");

    /* ---- image files */
    snprintf(path, sizeof path, "%s/roundtrip.png", workdir);
    EXPECT(mnm_image_save(path, &pose), MNM_OK, "");
    mnm_image loaded = {0};
    EXPECT(mnm_image_load(path, &loaded), MNM_OK, "");
    CHECK(same_pixels(&loaded, &pose) && loaded.stride == 3 * pose.width && loaded.owned != NULL);
    mnm_image_free(&loaded);
    EXPECT(mnm_image_load("/nonexistent/image.png", &loaded), MNM_ERR_NOT_FOUND, "image file not found");
    snprintf(path, sizeof path, "%s/not_an_image.png", workdir);
    EXPECT(mnm_image_load(path, &loaded), MNM_ERR_RUNTIME, "not a recognised image");
    snprintf(path, sizeof path, "%s/picture.xyz", workdir);
    EXPECT(mnm_image_save(path, &pose), MNM_ERR_ARGUMENT, "cannot tell the image format from the extension");
    snprintf(path, sizeof path, "%s/roundtrip.png", workdir);
    EXPECT(mnm_image_save(path, NULL), MNM_ERR_ARGUMENT, "image is NULL");
    EXPECT(mnm_image_load(NULL, &loaded), MNM_ERR_ARGUMENT, "path is NULL");
    uint8_t *own = pose.data;
    mnm_image_free(&pose); /* not the library's: left alone */
    CHECK(pose.data == own && pose.width == 50);

    /* ---- fork: the child gets errors, never a hang */
    snprintf(path, sizeof path, "%s/roundtrip.png", workdir);
    int child = forked_child_status(pipe, bundle, &request, path);
    printf("forked child %s (%d)\n", child == 0 ? "ok" : "FAILED", child);
    CHECK(child == 0);
    EXPECT(mnm_mix(pipe, &request, &out), MNM_OK, ""); /* the parent's pipeline is unharmed */
    mnm_image_free(&out);

    /* ---- closing: later calls get MNM_ERR_CLOSED, never a crash */
    EXPECT(mnm_pipeline_close(pipe), MNM_OK, "");
    EXPECT(mnm_animator_frame(code_animator, &frame, &out), MNM_ERR_CLOSED, "the animator's pipeline was closed");
    EXPECT(mnm_animator_close(code_animator), MNM_OK, "");
    EXPECT(mnm_pipeline_close(pipe), MNM_ERR_CLOSED, "not an open pipeline");
    EXPECT(mnm_mix(pipe, &request, &out), MNM_ERR_CLOSED, "not an open pipeline");
    EXPECT(mnm_pipeline_info(pipe, &info), MNM_ERR_CLOSED, "not an open pipeline");
    EXPECT(mnm_grid(pipe, &grid, &labelled, NULL), MNM_ERR_CLOSED, "not an open pipeline");
    EXPECT(mnm_encode(pipe, refs, &codes), MNM_ERR_CLOSED, "not an open pipeline");
    generate.count = 1;
    generate.b = b;
    EXPECT(mnm_generate(pipe, &generate, &out), MNM_ERR_CLOSED, "not an open pipeline");
    EXPECT(mnm_animator_open(pipe, &bg, NULL, &code_animator), MNM_ERR_CLOSED, "not an open pipeline");
    EXPECT(mnm_pipeline_close(small), MNM_OK, "");
    EXPECT(mnm_pipeline_close(NULL), MNM_OK, "");
    CHECK(strcmp(mnm_last_error(), "") == 0);

    mnm_image_free(&mixed);
    free(padded.data);
    free(bg.data);
    free(pose.data);
    free(texture.data);
    free(tiny.data);
    free(two[0].data);
    free(frame.data);
    free(z);
    free(b);
    free(p);
    free(c);
    printf("%d checks, %d failed\n", checks, failures);
    return failures ? 1 : 0;
}
