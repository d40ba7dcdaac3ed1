/* mnm_image_load on each file given: writes its pixels to FILE.rgb (rows of 3 * width bytes) and
 * prints "FILE WxH", or prints "FILE STATUS message" when the library refuses it. Driven by
 * tests/capi/test_image_files.py, which compares with the Python runtime's load_image. */
#include <stdio.h>

#include "mnm.h"

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; ++i) {
        mnm_image image = {0};
        mnm_status status = mnm_image_load(argv[i], &image);
        if (status != MNM_OK) {
            printf("%s %s %s\n", argv[i], mnm_status_name(status), mnm_last_error());
            continue;
        }
        char path[4096];
        snprintf(path, sizeof path, "%s.rgb", argv[i]);
        FILE *out = fopen(path, "wb");
        size_t row = 3 * (size_t)image.width;
        for (int y = 0; out != NULL && y < image.height; ++y)
            fwrite(image.data + (size_t)y * (size_t)image.stride, 1, row, out);
        if (out == NULL || fclose(out) != 0)
            return 1;
        printf("%s %dx%d\n", argv[i], image.width, image.height);
        mnm_image_free(&image);
    }
    return 0;
}
