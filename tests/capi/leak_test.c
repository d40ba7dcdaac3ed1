/* Memory across many mixes: the resident set and the bytes held by malloc, after a warm-up and after
 * N more mixes. Run by tests/capi/test_leaks.py.
 *
 *   leak_test BUNDLE N [--keep-outputs]
 *
 * Each mix takes four 256 x 256 caller images (alternating between two sets, so a copy kept per
 * call would show), half the outputs caller-provided and half library-allocated (freed, unless
 * --keep-outputs: a leak on purpose, to show the measure sees one); every 10th call also takes an
 * error path. Prints "warm RSS_KB HEAP_BYTES" and "after RSS_KB HEAP_BYTES". */
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mnm.h"

#define SIDE 256
#define WARM_UP 200

static long resident_kb(void)
{
    long pages = 0, resident = 0;
    FILE *statm = fopen("/proc/self/statm", "r");
    if (statm == NULL || fscanf(statm, "%ld %ld", &pages, &resident) != 2)
        resident = -1;
    if (statm != NULL)
        fclose(statm);
    return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

static size_t heap_bytes(void)
{
    struct mallinfo2 info = mallinfo2();
    return info.uordblks + info.hblkhd; /* in use: from the heap, and in mmap'd blocks */
}

static mnm_image picture(int seed)
{
    uint8_t *data = malloc(3 * SIDE * SIDE);
    for (int i = 0; i < 3 * SIDE * SIDE; ++i)
        data[i] = (uint8_t)(i * (seed + 3) / 7 + seed * 50);
    mnm_image image = {data, 3 * SIDE * SIDE, SIDE, SIDE, 3 * SIDE, NULL};
    return image;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: leak_test BUNDLE N [--keep-outputs]\n");
        return 2;
    }
    int count = atoi(argv[2]), keep_outputs = argc > 3 && strcmp(argv[3], "--keep-outputs") == 0;
    mnm_pipeline_options options = MNM_PIPELINE_OPTIONS_INIT;
    options.threads = 1;
    mnm_pipeline *pipe = NULL;
    if (mnm_pipeline_open(argv[1], &options, &pipe) != MNM_OK) {
        fprintf(stderr, "open: %s\n", mnm_last_error());
        return 1;
    }
    mnm_info info = MNM_INFO_INIT;
    mnm_pipeline_info(pipe, &info);
    mnm_image sets[2][4], own = {malloc(3 * (size_t)(info.image_size * info.image_size)),
                                 3 * (size_t)(info.image_size * info.image_size), info.image_size, info.image_size,
                                 3 * info.image_size, NULL};
    for (int s = 0; s < 2; ++s)
        for (int k = 0; k < 4; ++k)
            sets[s][k] = picture(4 * s + k);
    mnm_image corrupt = sets[0][0];
    corrupt.size = 10;

    for (int i = 0; i < WARM_UP + count; ++i) {
        if (i == WARM_UP)
            printf("warm %ld %zu\n", resident_kb(), heap_bytes());
        mnm_image *set = sets[i % 2];
        mnm_mix_request request = MNM_MIX_REQUEST_INIT;
        mnm_factor factors[4] = {{NULL, &set[0], NULL}, {NULL, &set[1], NULL}, {NULL, &set[2], NULL},
                                 {NULL, &set[3], NULL}};
        request.background = factors[0];
        request.pose = factors[1];
        request.shape = factors[2];
        request.texture = factors[3];
        request.seed = (uint32_t)i;
        mnm_image allocated = {0};
        mnm_image *out = i % 2 ? &own : &allocated;
        if (mnm_mix(pipe, &request, out) != MNM_OK) {
            fprintf(stderr, "mix %d: %s\n", i, mnm_last_error());
            return 1;
        }
        if (!keep_outputs)
            mnm_image_free(&allocated);
        if (i % 10 == 0) {
            request.texture.image = &corrupt;
            mnm_status status = mnm_mix(pipe, &request, &allocated);
            if (status != MNM_ERR_ARGUMENT) {
                fprintf(stderr, "mix %d with a corrupt image: %s %s\n", i, mnm_status_name(status), mnm_last_error());
                return 1;
            }
            mnm_pipeline_info(pipe, &info);
        }
    }
    printf("after %ld %zu\n", resident_kb(), heap_bytes());
    mnm_pipeline_close(pipe);
    return 0;
}
