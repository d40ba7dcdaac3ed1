"""What the onnxruntime GPU backends ask of the providers, checked without a GPU: TF32 off for fp32,
the explicit TensorRT profile and its cache folder, the TensorRT major the provider links, the
CUDA major a driver takes; and that both GPU backends say here why they cannot start."""

from __future__ import annotations

import sys
import types

import pytest

from mnm.runtime.backends import BackendUnavailable
from mnm.runtime.backends.environment import cuda_major_for_driver
from mnm.runtime.backends.ort import OrtBackend
from mnm.runtime.backends.ort_gpu import (
    cuda_options,
    import_tensorrt,
    linked_tensorrt_major,
    tensorrt_cache_dir,
    tensorrt_options,
)
from mnm.runtime.bundle import Bundle


def test_fp32_on_the_cuda_provider_is_fp32():
    assert cuda_options(1, "fp32") == {"device_id": "1", "cudnn_conv_algo_search": "EXHAUSTIVE", "use_tf32": "0"}
    assert cuda_options(0, "fp16")["use_tf32"] == "1"


def test_the_tensorrt_provider_gets_one_profile_from_batch_one_to_max_batch(tiny_bundle, tmp_path):
    graph = Bundle.open(tiny_bundle).graph("g_child")
    options = tensorrt_options(graph, 0, "fp32", 16, tmp_path)
    assert options["trt_profile_min_shapes"] == "shape_feature:1x4x32x32,c:1x4,background:1x3x32x32"
    assert options["trt_profile_opt_shapes"] == options["trt_profile_max_shapes"] == (
        "shape_feature:16x4x32x32,c:16x4,background:16x3x32x32")
    assert options["trt_engine_cache_enable"] == options["trt_timing_cache_enable"] == "1"
    assert options["trt_engine_cache_path"] == options["trt_timing_cache_path"] == str(tmp_path)
    assert options["trt_fp16_enable"] == "0"
    assert tensorrt_options(graph, 0, "fp16", 1, tmp_path)["trt_fp16_enable"] == "1"


def test_the_engine_cache_folder_is_keyed_by_what_invalidates_an_engine(tiny_bundle, tmp_path):
    import onnxruntime

    bundle = Bundle.open(tiny_bundle)
    folder = tensorrt_cache_dir(bundle, "fp32", 16, 0, base=tmp_path)
    assert folder.parent.name.startswith(f"ort{onnxruntime.__version__}-trt") and "-sm" in folder.parent.name
    assert folder.name == "fp32-b16" and folder.parent.parent.parent == tmp_path
    assert tensorrt_cache_dir(bundle, "fp32", 1, 0, base=tmp_path) != folder  # img2gif's profile beside it
    assert tensorrt_cache_dir(bundle, "fp16", 16, 0, base=tmp_path) != folder


def test_the_tensorrt_major_the_provider_links_is_read_from_its_library(tmp_path, monkeypatch):
    assert linked_tensorrt_major(tmp_path) is None
    (tmp_path / "libonnxruntime_providers_tensorrt.so").write_bytes(b"\x7fELF...\x00libnvinfer.so.10\x00...")
    assert linked_tensorrt_major(tmp_path) == 10
    stand_in = types.ModuleType("tensorrt")
    stand_in.__version__ = "11.4.0.106"
    monkeypatch.setitem(sys.modules, "tensorrt", stand_in)
    with pytest.raises(BackendUnavailable, match=r"built for TensorRT 10 .* tensorrt 11\.4\.0\.106 is installed; "
                                                 r"pip install 'tensorrt-cu\d+>=10,<11'"):
        import_tensorrt(tmp_path)
    stand_in.__version__ = "10.13.3.9"
    assert import_tensorrt(tmp_path) == "10.13.3.9"


@pytest.mark.parametrize("driver, cuda", [("580.65.06", 13), ("590.1", 13), ("550.54.15", 12), ("535.104.05", 12),
                                          ("525.60.13", None), (None, None), ("", None)])
def test_the_driver_decides_the_cuda_major(driver, cuda):
    assert cuda_major_for_driver(driver) == cuda


@pytest.mark.parametrize("name", ["ort-cuda", "ort-trt"])
def test_a_gpu_provider_this_onnxruntime_lacks_is_unavailable_with_the_fix(tiny_bundle, name):
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("onnxruntime-gpu is installed here")
    with pytest.raises(BackendUnavailable, match="install onnxruntime-gpu in place of onnxruntime"):
        OrtBackend(Bundle.open(tiny_bundle), name)
