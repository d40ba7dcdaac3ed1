/* The native library's side of the parity tests (tests/capi/test_parity.py): runs a fixed set of
 * requests on images the test wrote and saves what comes back, for the test to compare with the
 * Python runtime's answers to the same requests.
 *
 *   parity_driver BUNDLE FIT WORKDIR FRAMES
 *
 * WORKDIR holds ref0.png .. ref3.png, frame0.png .. frame<FRAMES-1>.png (a video's frames) and
 * generate.f32 (2 rows each of z_bg, b, z_pose, p, c); FIT is crop or squash. Writes mix_*.png,
 * grid.png, cell<i>.png, codes.f32 (4 rows each of z, b, p, c), generate<i>.png and
 * animated_<mode><i>.png there. Exits 1 with the failing call's message. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mnm.h"

static const char *workdir;

static void check(mnm_status status, const char *what)
{
    if (status != MNM_OK) {
        fprintf(stderr, "%s: %s: %s\n", what, mnm_status_name(status), mnm_last_error());
        exit(1);
    }
}

static char *path_of(const char *name)
{
    static char path[4096];
    snprintf(path, sizeof path, "%s/%s", workdir, name);
    return path;
}

static void save(const char *name, mnm_image *image)
{
    check(mnm_image_save(path_of(name), image), name);
    mnm_image_free(image);
}

static mnm_factor image_factor(const mnm_image *image, const double *box)
{
    mnm_factor factor = {NULL, image, box};
    return factor;
}

static mnm_factor spec(const char *text)
{
    mnm_factor factor = {text, NULL, NULL};
    return factor;
}

static void mix(mnm_pipeline *pipe, const char *name, mnm_factor background, mnm_factor pose, mnm_factor shape,
                mnm_factor texture, mnm_mode mode, mnm_stitch stitch)
{
    mnm_mix_request request = MNM_MIX_REQUEST_INIT;
    request.background = background;
    request.pose = pose;
    request.shape = shape;
    request.texture = texture;
    request.mode = mode;
    request.stitch = stitch;
    mnm_image out = {0};
    check(mnm_mix(pipe, &request, &out), name);
    save(name, &out);
}

static void write_floats(FILE *file, const float *values, size_t count)
{
    if (fwrite(values, sizeof *values, count, file) != count) {
        fprintf(stderr, "cannot write codes.f32\n");
        exit(1);
    }
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: parity_driver BUNDLE FIT WORKDIR FRAMES\n");
        return 2;
    }
    workdir = argv[3];
    int frames = atoi(argv[4]);
    mnm_pipeline_options options = MNM_PIPELINE_OPTIONS_INIT;
    options.threads = 1;
    options.max_batch = 3; /* the grid's 4 cells and the 4 references' codes run in two batches */
    options.fit = argv[2];
    mnm_pipeline *pipe = NULL;
    check(mnm_pipeline_open(argv[1], &options, &pipe), "open");
    mnm_info info = MNM_INFO_INIT;
    check(mnm_pipeline_info(pipe, &info), "info");

    mnm_image refs[4];
    char name[64];
    for (int i = 0; i < 4; ++i) {
        snprintf(name, sizeof name, "ref%d.png", i);
        memset(&refs[i], 0, sizeof refs[i]);
        check(mnm_image_load(path_of(name), &refs[i]), name);
    }
    const double box0[4] = {8, 6, 40, 30}, box1[4] = {5, 10, 30, 45};

    /* mixes: code and feature mode, code factors, boxes with stitching */
    mix(pipe, "mix_code.png", image_factor(&refs[0], NULL), image_factor(&refs[1], NULL), image_factor(&refs[2], NULL),
        image_factor(&refs[3], NULL), MNM_MODE_CODE, MNM_STITCH_NONE);
    mix(pipe, "mix_feature.png", image_factor(&refs[0], NULL), image_factor(&refs[1], NULL), image_factor(&refs[1], NULL),
        image_factor(&refs[3], NULL), MNM_MODE_FEATURE, MNM_STITCH_NONE);
    mix(pipe, "mix_codes.png", image_factor(&refs[0], NULL), image_factor(&refs[1], NULL), spec("code:1"),
        spec("code:2"), MNM_MODE_CODE, MNM_STITCH_NONE);
    mix(pipe, "mix_boxes.png", image_factor(&refs[0], box0), image_factor(&refs[1], box1), image_factor(&refs[2], NULL),
        image_factor(&refs[3], box0), MNM_MODE_CODE, MNM_STITCH_BACKGROUND);
    mix(pipe, "mix_feature_boxes.png", image_factor(&refs[0], NULL), image_factor(&refs[1], box1), spec(NULL),
        image_factor(&refs[3], NULL), MNM_MODE_FEATURE, MNM_STITCH_FOREGROUND);

    /* a grid: 2 backgrounds x 2 textures, its cells too */
    mnm_factor backgrounds[2] = {image_factor(&refs[0], NULL), image_factor(&refs[1], NULL)};
    mnm_factor textures[2] = {image_factor(&refs[3], NULL), spec("code:0")};
    mnm_factor pose = image_factor(&refs[2], NULL), shape = spec("code:1");
    mnm_grid_request grid = MNM_GRID_REQUEST_INIT;
    grid.background = backgrounds;
    grid.n_background = 2;
    grid.pose = &pose;
    grid.n_pose = 1;
    grid.shape = &shape;
    grid.n_shape = 1;
    grid.texture = textures;
    grid.n_texture = 2;
    mnm_image labelled = {0}, cells[4];
    memset(cells, 0, sizeof cells);
    check(mnm_grid(pipe, &grid, &labelled, cells), "grid");
    save("grid.png", &labelled);
    for (int i = 0; i < 4; ++i) {
        snprintf(name, sizeof name, "cell%d.png", i);
        save(name, &cells[i]);
    }

    /* codes of the four references */
    int dims[4] = {info.z_dim, info.b_dim, info.p_dim, info.c_dim};
    float *rows[4];
    for (int k = 0; k < 4; ++k)
        rows[k] = calloc(4 * (size_t)dims[k], sizeof(float));
    mnm_codes codes = MNM_CODES_INIT;
    codes.count = 4;
    codes.z = rows[0];
    codes.b = rows[1];
    codes.p = rows[2];
    codes.c = rows[3];
    check(mnm_encode(pipe, refs, &codes), "encode");
    FILE *file = fopen(path_of("codes.f32"), "wb");
    for (int k = 0; k < 4; ++k) {
        write_floats(file, rows[k], 4 * (size_t)dims[k]);
        free(rows[k]);
    }
    fclose(file);

    /* generate from the test's codes */
    int gen_dims[5] = {info.z_dim, info.b_dim, info.z_dim, info.p_dim, info.c_dim};
    float *gen[5];
    file = fopen(path_of("generate.f32"), "rb");
    for (int k = 0; k < 5; ++k) {
        gen[k] = calloc(2 * (size_t)gen_dims[k], sizeof(float));
        if (file == NULL || fread(gen[k], sizeof(float), 2 * (size_t)gen_dims[k], file) != 2 * (size_t)gen_dims[k]) {
            fprintf(stderr, "cannot read generate.f32\n");
            return 1;
        }
    }
    fclose(file);
    mnm_generate_request generate = MNM_GENERATE_REQUEST_INIT;
    generate.count = 2;
    generate.z_bg = gen[0];
    generate.b = gen[1];
    generate.z_pose = gen[2];
    generate.p = gen[3];
    generate.c = gen[4];
    mnm_image generated[2];
    memset(generated, 0, sizeof generated);
    check(mnm_generate(pipe, &generate, generated), "generate");
    for (int i = 0; i < 2; ++i) {
        snprintf(name, sizeof name, "generate%d.png", i);
        save(name, &generated[i]);
    }
    for (int k = 0; k < 5; ++k)
        free(gen[k]);

    /* the animator over the video's frames, in both modes */
    for (int m = 0; m < 2; ++m) {
        mnm_animator_options animation = MNM_ANIMATOR_OPTIONS_INIT;
        animation.mode = m ? MNM_MODE_FEATURE : MNM_MODE_CODE;
        mnm_animator *animator = NULL;
        check(mnm_animator_open(pipe, &refs[0], &animation, &animator), "animator");
        for (int i = 0; i < frames; ++i) {
            mnm_image frame = {0}, out = {0};
            snprintf(name, sizeof name, "frame%d.png", i);
            check(mnm_image_load(path_of(name), &frame), name);
            check(mnm_animator_frame(animator, &frame, &out), "frame");
            mnm_image_free(&frame);
            snprintf(name, sizeof name, "animated_%s%d.png", m ? "feature" : "code", i);
            save(name, &out);
        }
        check(mnm_animator_close(animator), "animator close");
    }
    for (int i = 0; i < 4; ++i)
        mnm_image_free(&refs[i]);
    check(mnm_pipeline_close(pipe), "close");
    printf("parity requests done\n");
    return 0;
}
