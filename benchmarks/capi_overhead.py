"""What the C API adds per call: ``mnm_mix`` through libmnm.so against ``Pipeline.mix`` in Python.

Both run in this process on the same four reference images, round-robin (``mnm.runtime.bench.interleaved``)
so load on a shared machine hits them alike. libmnm is loaded with cffi's ABI mode; since the process
already runs Python, the library uses this interpreter (as it would inside any Python-hosting app),
so the C path is: a C call, the library's C half, its Python half (copy and check the caller's
images, look the handle up, allocate the output), then the same ``Pipeline.mix``. Each side has its own
pipeline on the same bundle with one onnxruntime thread. Caches are warm after the warm-up, so a
mix runs the preprocessing, the encoder lookups and ``g_child``: the overhead shows against the
smallest real call.

    python benchmarks/capi_overhead.py [--bundle mnm/assets/demo/bundle] [--repeats 300] [--json out.json]

Needs ``make cpp`` first (build/cpp/libmnm.so).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

from mnm.demo import DEMO_DIR
from mnm.runtime import Pipeline
from mnm.runtime.bench import interleaved, machine_details, summarize
from mnm.runtime.capi.build import header_types

ROOT = Path(__file__).resolve().parents[1]
PUBLIC = """
mnm_status mnm_pipeline_open(const char *bundle, const mnm_pipeline_options *options, mnm_pipeline **out);
mnm_status mnm_pipeline_close(mnm_pipeline *pipeline);
mnm_status mnm_mix(mnm_pipeline *pipeline, const mnm_mix_request *request, mnm_image *out);
const char *mnm_last_error(void);
"""


def references(seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (60, 80, 3), dtype=np.uint8) for _ in range(4)]


def main(argv: list[str] | None = None) -> int:
    import cffi

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, default=DEMO_DIR / "bundle")
    parser.add_argument("--library", type=Path, default=ROOT / "build" / "cpp" / "libmnm.so")
    parser.add_argument("--repeats", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    if not args.library.exists():
        print(f"error: {args.library}: not built; run make cpp", file=sys.stderr)
        return 2

    ffi = cffi.FFI()
    ffi.cdef(header_types() + PUBLIC)
    lib = ffi.dlopen(str(args.library))
    handle = ffi.new("mnm_pipeline **")
    options = ffi.new("mnm_pipeline_options *", {"threads": 1})
    if lib.mnm_pipeline_open(os.fsencode(args.bundle), options, handle) != 0:
        print(f"error: {ffi.string(lib.mnm_last_error()).decode()}", file=sys.stderr)
        return 2

    refs = references()
    images = [ffi.new("mnm_image *", {"data": ffi.from_buffer("uint8_t[]", a), "size": a.nbytes, "width": a.shape[1],
                                      "height": a.shape[0], "stride": 3 * a.shape[1]}) for a in refs]
    request = ffi.new("mnm_mix_request *")
    for field, image in zip(("background", "pose", "shape", "texture"), images, strict=True):
        getattr(request, field).image = image
    out_pixels = np.zeros((32, 32, 3), np.uint8)
    out = ffi.new("mnm_image *", {"data": ffi.from_buffer("uint8_t[]", out_pixels), "size": out_pixels.nbytes,
                                  "width": 32, "height": 32, "stride": 96})
    pipe = Pipeline(args.bundle, threads=1)

    def through_c():
        if lib.mnm_mix(handle[0], request, out) != 0:
            raise RuntimeError(ffi.string(lib.mnm_last_error()).decode())

    def in_python():
        return pipe.mix(*refs, seed=0)

    through_c()
    if not np.array_equal(out_pixels, in_python()):
        print("error: the C API and Python gave different images", file=sys.stderr)
        return 1
    times = interleaved({"c_api": through_c, "python": in_python}, args.repeats, args.warmup)
    report = {name: summarize(t) for name, t in times.items()}
    overhead_us = (report["c_api"]["median_ms"] - report["python"]["median_ms"]) * 1e3
    report["overhead_us_median"] = overhead_us
    report["machine"] = machine_details()
    report["load_average"] = os.getloadavg()
    lib.mnm_pipeline_close(handle[0])
    for name in ("python", "c_api"):
        r = report[name]
        print(f"{name:7s} median {r['median_ms']:.3f} ms  p95 {r['p95_ms']:.3f} ms  min {r['min_ms']:.3f} ms")
    print(f"C API overhead per mix: {overhead_us:+.0f} us (median), "
          f"{(report['c_api']['min_ms'] - report['python']['min_ms']) * 1e3:+.0f} us (fastest); "
          f"load average {report['load_average'][0]:.2f}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
