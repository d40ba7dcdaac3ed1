/* The functions the Python side (bridge.py) implements: the public functions of mnm.h that need the
   interpreter, under an mnm_py_ prefix and with the same arguments. libmnm.c calls them after the
   interpreter is up; the build declares them to cffi as extern "Python". MNM_BRIDGE is `static`
   in libmnm.c (the build strips it for cffi). */
MNM_BRIDGE mnm_status mnm_py_pipeline_open(const char *bundle, const mnm_pipeline_options *options, mnm_pipeline **out);
MNM_BRIDGE mnm_status mnm_py_pipeline_close(mnm_pipeline *pipeline);
MNM_BRIDGE mnm_status mnm_py_pipeline_info(mnm_pipeline *pipeline, mnm_info *out);
MNM_BRIDGE mnm_status mnm_py_mix(mnm_pipeline *pipeline, const mnm_mix_request *request, mnm_image *out);
MNM_BRIDGE mnm_status mnm_py_grid(mnm_pipeline *pipeline, const mnm_grid_request *request, mnm_image *image, mnm_image *cells);
MNM_BRIDGE mnm_status mnm_py_encode(mnm_pipeline *pipeline, const mnm_image *images, mnm_codes *codes);
MNM_BRIDGE mnm_status mnm_py_generate(mnm_pipeline *pipeline, const mnm_generate_request *request, mnm_image *out);
MNM_BRIDGE mnm_status mnm_py_animator_open(mnm_pipeline *pipeline, const mnm_image *static_image, mnm_mode mode, mnm_animator **out);
MNM_BRIDGE mnm_status mnm_py_animator_frame(mnm_animator *animator, const mnm_image *frame, mnm_image *out);
MNM_BRIDGE mnm_status mnm_py_animator_close(mnm_animator *animator);
MNM_BRIDGE mnm_status mnm_py_image_load(const char *path, mnm_image *out);
MNM_BRIDGE mnm_status mnm_py_image_save(const char *path, const mnm_image *image);
