"""TensorRT engines for a finished bundle: one per graph and precision, with a build record each and
a shared, persisted timing cache.

Works with the TensorRT 10 and 11 Python APIs by never using what differs between them: every
network is strongly typed (a creation flag in 10; always on, the flag deprecated, in 11), so the
precision comes from the graph itself: fp32 engines from the fp32 graphs (TF32 off where the flag
exists), fp16 engines from the fp16 graphs. TensorRT 11 dropped the FP16 builder flag; neither
version needs it here.

Each engine has two optimisation profiles: batch 1 exactly (img2gif and single mixes run kernels
chosen for one image) and 1..max_batch tuned for max_batch (grids, plans); the runtime picks by
batch. Engines are tied to the exact TensorRT version that built them (they are not built
version-compatible, which TensorRT documents as possibly slower); the build record says so.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from mnm.atomic import write_bytes, write_text
from mnm.errors import MnmError
from mnm.export.manifest import write_manifest
from mnm.progress import track
from mnm.provenance import file_digest, utc_now
from mnm.runtime.engine_record import local_gpu

ENGINES = "engines"
TIMING_CACHE = "timing.cache"


def build_engines(bundle: Path, manifest: dict, max_batch: int, rebuild: str, opt_batch: int | None = None) -> dict:
    """Build every graph of ``manifest`` (fp32 and, where present, fp16) into ``bundle/engines``.

    Profile 0 is batch 1; profile 1 spans batch 1..``max_batch`` tuned for ``opt_batch`` (default
    ``max_batch``). Raises one ``MnmError`` line when TensorRT or a GPU is missing; the ONNX bundle
    is left as it is. Returns the manifest with its ``engines`` filled in (also written).
    """
    bundle = Path(bundle)
    trt = _import_tensorrt(bundle)
    gpu = local_gpu()
    if gpu is None:
        raise MnmError(f"--trt: no CUDA GPU is visible; the ONNX bundle {bundle} is complete, without engines")
    opt_batch = max_batch if opt_batch is None else min(max(1, opt_batch), max_batch)
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    cache_path = bundle / TIMING_CACHE
    cache_owner = builder.create_builder_config()  # kept alive as long as the cache it creates
    cache = timing_cache(cache_owner, cache_path)
    jobs = [(name, entry) for name, entry in manifest["graphs"].items()]
    jobs += [(name, entry) for name, entry in manifest.get("graphs_fp16", {}).items()]
    engines = dict(manifest.get("engines", {}))
    print(f"note: building {len(jobs)} TensorRT {trt.__version__} engines on {gpu['gpu_name']}; the first build "
          "on a machine takes minutes (the timing cache makes later ones faster)", file=sys.stderr, flush=True)
    for name, entry in track(jobs, desc="tensorrt", unit="engine"):
        precision = entry["precision"]
        source = bundle / entry["file"]
        profiles = batch_profiles(entry["inputs"], max_batch, opt_batch)
        plan = _build(trt, builder, logger, cache, source, precision, profiles)
        stem = f"{ENGINES}/{name}.{precision}"
        write_bytes(bundle / f"{stem}.engine", plan)
        record = {
            "graph": name,
            "precision": precision,
            "tensorrt_version": trt.__version__,
            "gpu_name": gpu["gpu_name"],
            "compute_capability": gpu["compute_capability"],
            "profiles": profiles,
            "source_file": entry["file"],
            "source_sha256": file_digest(source)[0],
            "strongly_typed": True,
            "version_compatible": False,
            "built": utc_now(),
            "rebuild": rebuild,
        }
        write_text(bundle / f"{stem}.json", json.dumps(record, indent=2) + "\n")
        sha256, size = file_digest(bundle / f"{stem}.engine")
        engines[f"{name}.{precision}"] = {
            "file": f"{stem}.engine", "record": f"{stem}.json", "sha256": sha256, "bytes": size,
        }
        write_bytes(cache_path, bytes(cache.serialize()))  # kept even if a later build fails
    manifest = {**manifest, "engines": engines, "timing_cache": TIMING_CACHE}
    write_manifest(bundle, manifest)
    return manifest


def batch_profiles(inputs: list[dict], max_batch: int, opt_batch: int) -> list[dict]:
    """``[{input: [min, opt, max] shapes}, ...]``: batch 1, then 1..max_batch tuned for opt_batch."""

    def profile(low: int, opt: int, high: int) -> dict:
        return {t["name"]: [[b, *t["shape"][1:]] for b in (low, opt, high)] for t in inputs}

    single = profile(1, 1, 1)
    return [single] if max_batch == 1 else [single, profile(1, opt_batch, max_batch)]


def timing_cache(config, path: Path):
    """The bundle's timing cache, or a fresh one where the saved cache is refused.

    A timing cache is valid for the TensorRT version and GPU that wrote it: ``set_timing_cache``
    with ``ignore_mismatch=False`` returns False for one from another device (a bundle exported
    again on another machine), and a damaged file may not load at all; either way the build
    starts a fresh cache (and overwrites the file) rather than failing or mixing timings."""
    saved = path.read_bytes() if path.is_file() else b""
    try:
        cache = config.create_timing_cache(saved)
        if cache is not None and config.set_timing_cache(cache, False):
            return cache
    except Exception:  # TensorRT raises its own types for an unreadable cache
        pass
    if saved:
        print(f"note: {path} was written by another GPU or TensorRT version; starting a fresh timing cache",
              file=sys.stderr, flush=True)
    cache = config.create_timing_cache(b"")
    config.set_timing_cache(cache, False)
    return cache


def _build(trt, builder, logger, cache, source: Path, precision: str, profiles: list[dict]) -> bytes:
    network = builder.create_network(_network_flags(trt))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(source)):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise MnmError(f"{source}: TensorRT cannot parse the graph: {errors[0] if errors else 'unknown error'}")
    config = builder.create_builder_config()
    config.set_timing_cache(cache, False)  # accepted above (timing_cache)
    if precision == "fp32" and hasattr(trt.BuilderFlag, "TF32"):
        config.clear_flag(trt.BuilderFlag.TF32)  # "fp32" means fp32 math, as the parity was measured
    for shapes in profiles:
        profile = builder.create_optimization_profile()
        for name, (low, opt, high) in shapes.items():
            profile.set_shape(name, low, opt, high)
        config.add_optimization_profile(profile)
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise MnmError(f"{source}: TensorRT could not build a {precision} engine (its log above says why)")
    return bytes(plan)


def _network_flags(trt) -> int:
    """Strongly typed: a flag in TensorRT 10, the only mode in 11 (where the flag is deprecated)."""
    if _major(trt.__version__) >= 11:
        return 0
    return 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)


def _import_tensorrt(bundle: Path):
    try:
        import tensorrt as trt
    except ImportError:
        raise MnmError(
            "--trt: TensorRT is not installed (pip install 'mnm[trt-cu12]' or 'mnm[trt-cu13]' on a machine with "
            f"an NVIDIA GPU, docs/gpu.md); "
            f"the ONNX bundle {bundle} is complete, without engines"
        ) from None
    except Exception as exc:  # the wheel is there but its CUDA libraries are not
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise MnmError(f"--trt: TensorRT cannot be loaded ({first}); the ONNX bundle {bundle} is complete") from None
    if _major(trt.__version__) < 10:
        raise MnmError(
            f"--trt: TensorRT {trt.__version__} is too old (10 or 11 needed); the ONNX bundle {bundle} is complete"
        )
    return trt


def _major(version: str) -> int:
    return int(version.split(".")[0])
