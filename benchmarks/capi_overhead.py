"""The native C library (build/cpp/libmnm.so) against the Python runtime, interleaved in one run.

For each bundle (the demo bundle and a random-init paper-preset bundle) the same work goes through
``mnm_mix``/``mnm_grid``/``mnm_animator_frame`` (called with ctypes) and through ``Pipeline.mix``/
``Pipeline.grid``/``Animator.frame``, round-robin (``mnm.runtime.bench.interleaved``) so load on a
shared machine hits both alike. Each side has its own pipeline with one ONNX Runtime thread.

Cases:
- ``open + close``: a pipeline on the bundle (every file's sha256 verified, a session per graph), closed.
- ``mix (warm)``: the same four references every call, so the content-keyed caches answer the encoders:
  what is left is preprocessing, cache lookups, ``g_child`` and the glue around them.
- ``mix (new refs)``, ``grid 4x4x4``, ``img2gif frame``: every call gets images never seen before (a new
  patch at their centre), so every encoder runs: the cost an app sees on fresh photos and frames.
  The grid is 4 backgrounds x 4 poses x 4 textures (64 cells, one shape code) with its labelled image.
- per-call cost: ``mnm_status_name`` (ctypes' own floor) and ``mnm_mix`` with a NULL request (the
  library's entry, its argument check and its per-thread error message, no model).

    python benchmarks/capi_overhead.py [--paper-bundle DIR] [--repeats 200] [--json out.json]

Needs ``make cpp`` first. Without --paper-bundle the paper bundle is exported with random weights
(``mnm export --random-init --preset paper``: needs the train extra) into a temporary folder.
"""

from __future__ import annotations

import argparse
import ctypes as C
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from mnm.demo import DEMO_DIR
from mnm.runtime import Pipeline
from mnm.runtime.bench import interleaved, summarize
from mnm.runtime.machine import details, load_average

ROOT = Path(__file__).resolve().parents[1]
SIDE = (60, 80)  # reference photos: 80 x 60 RGB (each side crops the centred square)


# ------------------------------------------------------------------ mnm.h for ctypes (ABI version 1)
class Image(C.Structure):
    _fields_ = [("data", C.c_void_p), ("size", C.c_size_t), ("width", C.c_int32), ("height", C.c_int32),
                ("stride", C.c_int32), ("owned", C.c_void_p)]


class Factor(C.Structure):
    _fields_ = [("spec", C.c_char_p), ("image", C.POINTER(Image)), ("box", C.POINTER(C.c_double))]


class PipelineOptions(C.Structure):
    _fields_ = [("struct_size", C.c_size_t), ("backend", C.c_char_p), ("threads", C.c_int32),
                ("max_batch", C.c_int32), ("precision", C.c_char_p), ("fit", C.c_char_p),
                ("onnxruntime_library", C.c_char_p)]


class MixRequest(C.Structure):
    _fields_ = [("struct_size", C.c_size_t), ("background", Factor), ("pose", Factor), ("shape", Factor),
                ("texture", Factor), ("mode", C.c_int), ("stitch", C.c_int), ("seed", C.c_uint32)]


class GridRequest(C.Structure):
    _fields_ = [("struct_size", C.c_size_t), ("background", C.POINTER(Factor)), ("n_background", C.c_int32),
                ("pose", C.POINTER(Factor)), ("n_pose", C.c_int32), ("shape", C.POINTER(Factor)),
                ("n_shape", C.c_int32), ("texture", C.POINTER(Factor)), ("n_texture", C.c_int32),
                ("mode", C.c_int), ("seed", C.c_uint32), ("stitch", C.c_int)]


class AnimatorOptions(C.Structure):
    _fields_ = [("struct_size", C.c_size_t), ("mode", C.c_int), ("static_box", C.POINTER(C.c_double)),
                ("frame_box", C.POINTER(C.c_double))]


def load_library(path: Path) -> C.CDLL:
    lib = C.CDLL(str(path))
    handle = C.POINTER(C.c_void_p)
    signatures = {
        "mnm_version": ([], C.c_char_p),
        "mnm_last_error": ([], C.c_char_p),
        "mnm_status_name": ([C.c_int], C.c_char_p),
        "mnm_pipeline_open": ([C.c_char_p, C.POINTER(PipelineOptions), handle], C.c_int),
        "mnm_pipeline_close": ([C.c_void_p], C.c_int),
        "mnm_mix": ([C.c_void_p, C.POINTER(MixRequest), C.POINTER(Image)], C.c_int),
        "mnm_grid": ([C.c_void_p, C.POINTER(GridRequest), C.POINTER(Image), C.POINTER(Image)], C.c_int),
        "mnm_animator_open": ([C.c_void_p, C.POINTER(Image), C.POINTER(AnimatorOptions), handle], C.c_int),
        "mnm_animator_frame": ([C.c_void_p, C.POINTER(Image), C.POINTER(Image)], C.c_int),
        "mnm_animator_close": ([C.c_void_p], C.c_int),
        "mnm_image_free": ([C.POINTER(Image)], None),
    }
    for name, (args, result) in signatures.items():
        function = getattr(lib, name)
        function.argtypes, function.restype = args, result
    return lib


def view(pixels: np.ndarray) -> Image:
    """An mnm_image over a C-contiguous H x W x 3 uint8 array (borrowed: keep the array alive)."""
    return Image(pixels.ctypes.data, pixels.nbytes, pixels.shape[1], pixels.shape[0], 3 * pixels.shape[1], None)


class Native:
    """One pipeline of the native library, called the way an app calls it."""

    def __init__(self, lib: C.CDLL, bundle: Path):
        self.lib = lib
        options = PipelineOptions(C.sizeof(PipelineOptions), b"ort-cpu", 1)
        self.handle = C.c_void_p()
        self.check(lib.mnm_pipeline_open(os.fsencode(bundle), C.byref(options), C.byref(self.handle)))

    def check(self, status: int) -> None:
        if status != 0:
            raise RuntimeError(f"{self.lib.mnm_status_name(status).decode()}: {self.lib.mnm_last_error().decode()}")

    def take(self, image: Image) -> np.ndarray:
        """A library-allocated image as an array (copied), then freed."""
        pixels = np.ctypeslib.as_array(C.cast(image.data, C.POINTER(C.c_uint8)), (image.height, image.stride))
        out = pixels[:, : 3 * image.width].reshape(image.height, image.width, 3).copy()
        self.lib.mnm_image_free(C.byref(image))
        return out

    def mix(self, refs: list[np.ndarray]) -> np.ndarray:
        images = [view(r) for r in refs]
        request = MixRequest(C.sizeof(MixRequest))
        request.background.image, request.pose.image = C.pointer(images[0]), C.pointer(images[1])
        request.shape.image, request.texture.image = C.pointer(images[2]), C.pointer(images[3])
        out = Image()
        self.check(self.lib.mnm_mix(self.handle, C.byref(request), C.byref(out)))
        return self.take(out)

    def grid(self, backgrounds, poses, textures, shape: bytes) -> np.ndarray:
        images = [[view(r) for r in refs] for refs in (backgrounds, poses, textures)]
        lists = [(Factor * len(row))(*(Factor(None, C.pointer(i), None) for i in row)) for row in images]
        shapes = (Factor * 1)(Factor(shape, None, None))
        request = GridRequest(C.sizeof(GridRequest), lists[0], len(backgrounds), lists[1], len(poses), shapes, 1,
                              lists[2], len(textures))
        out = Image()
        self.check(self.lib.mnm_grid(self.handle, C.byref(request), C.byref(out), None))
        return self.take(out)

    def animator(self, still: np.ndarray):
        options = AnimatorOptions(C.sizeof(AnimatorOptions), 0)
        animator = C.c_void_p()
        self.check(self.lib.mnm_animator_open(self.handle, C.byref(view(still)), C.byref(options),
                                              C.byref(animator)))

        def frame(pixels: np.ndarray) -> np.ndarray:
            out = Image()
            self.check(self.lib.mnm_animator_frame(animator, C.byref(view(pixels)), C.byref(out)))
            return self.take(out)

        return frame, lambda: self.lib.mnm_animator_close(animator)

    def close(self) -> None:
        self.lib.mnm_pipeline_close(self.handle)


# ------------------------------------------------------------------ the cases
class Fresh:
    """Images never seen before: fixed random photos whose centre (inside every crop) gets a new 4 x 4
    patch on each call, drawn from a generator seeded by the call's number, so no cache can answer."""

    def __init__(self, count: int, shape=SIDE, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.images = [rng.integers(0, 256, (*shape, 3), dtype=np.uint8) for _ in range(count)]
        self.tick = 0

    def next(self) -> list[np.ndarray]:
        self.tick += 1
        patches = np.random.default_rng(self.tick).integers(0, 256, (len(self.images), 4, 4, 3), dtype=np.uint8)
        for image, patch in zip(self.images, patches, strict=True):
            y, x = image.shape[0] // 2, image.shape[1] // 2
            image[y - 2 : y + 2, x - 2 : x + 2] = patch
        return self.images


def compare(report: dict, name: str, native, python, repeats: int, warmup: int, images: int = 1) -> None:
    times = interleaved({"native": native, "python": python}, repeats, warmup)
    row = {side: summarize(t, images) for side, t in times.items()}
    row["speedup"] = row["python"]["median_ms"] / row["native"]["median_ms"]
    report[name] = row
    print(f"  {name:15s} native {row['native']['median_ms']:9.3f} ms  python {row['python']['median_ms']:9.3f} ms"
          f"  python/native {row['speedup']:5.2f}x", flush=True)


def bench_bundle(lib: C.CDLL, bundle: Path, repeats: int, grid_repeats: int, warmup: int) -> dict:
    report: dict = {"bundle": str(bundle)}
    compare(report, "open + close", lambda: Native(lib, bundle).close(),
            lambda: Pipeline(bundle, backend="ort-cpu", threads=1).close(), grid_repeats, 1)
    native, pipe = Native(lib, bundle), Pipeline(bundle, backend="ort-cpu", threads=1)
    report["image_size"] = pipe.config.image_size
    same = np.random.default_rng(1).integers(0, 256, (4, *SIDE, 3), dtype=np.uint8)
    refs = list(same)
    diff = np.abs(native.mix(refs).astype(int) - pipe.mix(*refs).astype(int)).max()
    report["mix_max_abs_difference"] = int(diff)  # parity is tested (tests/capi); recorded to show like is timed
    compare(report, "mix (warm)", lambda: native.mix(refs), lambda: pipe.mix(*refs), repeats, warmup)

    fresh_native, fresh_python = Fresh(4, seed=2), Fresh(4, seed=2)
    compare(report, "mix (new refs)", lambda: native.mix(fresh_native.next()),
            lambda: pipe.mix(*fresh_python.next()), repeats, warmup)

    grid_native, grid_python = Fresh(12, seed=3), Fresh(12, seed=3)

    def grid_c():
        r = grid_native.next()
        return native.grid(r[0:4], r[4:8], r[8:12], b"code:1")

    def grid_py():
        r = grid_python.next()
        return pipe.grid(r[0:4], r[4:8], ["code:1"], r[8:12]).image()

    compare(report, "grid 4x4x4", grid_c, grid_py, grid_repeats, 1, images=64)

    still = np.random.default_rng(4).integers(0, 256, (*SIDE, 3), dtype=np.uint8)
    frame_native, close_animator = native.animator(still)
    animator = pipe.animator(still)
    frames_native, frames_python = Fresh(1, (48, 64), seed=5), Fresh(1, (48, 64), seed=5)
    compare(report, "img2gif frame", lambda: frame_native(frames_native.next()[0]),
            lambda: animator.frame(frames_python.next()[0]), repeats, warmup)
    close_animator()
    native.close()
    pipe.close()
    return report


def per_call(lib: C.CDLL, bundle: Path, repeats: int) -> dict:
    native = Native(lib, bundle)
    out = Image()
    times = interleaved({
        "status_name": lambda: lib.mnm_status_name(6),
        "argument_error": lambda: lib.mnm_mix(native.handle, None, C.byref(out)),
    }, repeats, 100)
    native.close()
    report = {name: summarize(t) for name, t in times.items()}
    report["library_entry_us"] = (report["argument_error"]["median_ms"] - report["status_name"]["median_ms"]) * 1e3
    print(f"  per call: ctypes floor {report['status_name']['median_ms'] * 1e3:.2f} us, mnm_mix argument error "
          f"{report['argument_error']['median_ms'] * 1e3:.2f} us: the library's entry "
          f"{report['library_entry_us']:.2f} us", flush=True)
    return report


def export_paper(folder: Path) -> Path:
    out = folder / "paper"
    command = [sys.executable, "-m", "mnm", "export", "--random-init", "--preset", "paper", "--out", str(out)]
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "MNM_NO_PROGRESS": "1"})
    if done.returncode != 0:
        raise SystemExit(f"error: {' '.join(command)} failed:\n{done.stderr[-2000:]}")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--library", type=Path, default=ROOT / "build" / "cpp" / "libmnm.so")
    parser.add_argument("--demo-bundle", type=Path, default=DEMO_DIR / "bundle")
    parser.add_argument("--paper-bundle", type=Path, help="a paper-preset bundle [default: export a random-init one]")
    parser.add_argument("--no-paper", action="store_true", help="the demo bundle only")
    parser.add_argument("--repeats", type=int, default=200, help="timed rounds per case (demo bundle)")
    parser.add_argument("--paper-repeats", type=int, default=20, help="timed rounds per case (paper bundle)")
    parser.add_argument("--grid-repeats", type=int, default=5, help="timed rounds of the 64-cell grid and the open")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    if not args.library.exists():
        print(f"error: {args.library}: not built; run make cpp", file=sys.stderr)
        return 2
    lib = load_library(args.library)
    report = {"command": " ".join(["python", "benchmarks/capi_overhead.py", *(argv or sys.argv[1:])]),
              "library": lib.mnm_version().decode(), "machine": details(("onnxruntime",)),
              "load_average_start": load_average(), "bundles": {}}
    with tempfile.TemporaryDirectory() as scratch:
        bundles = {"demo": (args.demo_bundle, args.repeats)}
        if not args.no_paper:
            if args.paper_bundle is None:
                print("exporting the random-init paper bundle ...", flush=True)
            bundles["paper"] = (args.paper_bundle or export_paper(Path(scratch)), args.paper_repeats)
        for name, (bundle, repeats) in bundles.items():
            print(f"{name} bundle ({bundle}):", flush=True)
            report["bundles"][name] = bench_bundle(lib, bundle, repeats, args.grid_repeats, args.warmup)
    report["per_call"] = per_call(lib, args.demo_bundle, max(args.repeats, 1000))
    report["load_average_end"] = load_average()
    machine = report["machine"]
    print(f"{machine['cpu']} ({', '.join(machine['cpu_features'])}); load average "
          f"{report['load_average_start']} -> {report['load_average_end']}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
