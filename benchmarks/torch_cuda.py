"""PyTorch baselines on a CUDA GPU for each exported graph: eager, and CUDA-graph replay (the graph
captured once at each batch size, inputs copied into its static buffers, then replayed), so the
GPU backends of the runtime can be compared with the best that PyTorch itself offers.

``python benchmarks/torch_cuda.py --bundle BUNDLE [--batch 1,8,32] [--json out.json]``; the torch
networks are rebuilt from the bundle's manifest (same weights). fp32 with TF32 off, like the fp32
graphs; ``--fp16`` runs the modules in half precision instead.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np


def graph_baselines(bundle, modules, batches, repeats: int, warmup: int, dtype) -> dict:
    """Per graph and batch: eager and CUDA-graph replay latency (each includes the host copy of the
    inputs in and of the first output back, as the runtime's backends do)."""
    import torch

    from mnm.export.specs import SPECS, ExportModules
    from mnm.runtime.bench import graph_inputs, interleaved, summarize

    modules = ExportModules(*modules)
    result = {}
    for name in bundle.graphs:
        module = SPECS[name].module(modules).to("cuda", dtype).eval()
        per_batch = {}
        for batch in batches:
            host = {k: torch.from_numpy(v).to(dtype)
                    for k, v in graph_inputs(bundle, name, batch, np.random.default_rng(batch)).items()}
            order = SPECS[name].inputs
            static = [host[k].to("cuda") for k in order]

            @torch.inference_mode()
            def eager(module=module, host=host, order=order):
                out = module(*(host[k].to("cuda", non_blocking=True) for k in order))
                first = out[0] if isinstance(out, tuple) else out
                return first.cpu()

            graph = torch.cuda.CUDAGraph()
            stream = torch.cuda.Stream()
            stream.wait_stream(torch.cuda.current_stream())
            with torch.inference_mode(), torch.cuda.stream(stream):
                for _ in range(3):  # warm up on a side stream before capture, as torch requires
                    module(*static)
            torch.cuda.current_stream().wait_stream(stream)
            with torch.inference_mode(), torch.cuda.graph(graph):
                captured = module(*static)
            captured = captured[0] if isinstance(captured, tuple) else captured

            def replay(static=static, host=host, order=order, graph=graph, captured=captured):
                for buffer, key in zip(static, order, strict=True):
                    buffer.copy_(host[key], non_blocking=True)
                graph.replay()
                return captured.cpu()

            times = interleaved({"eager": eager, "cuda_graph": replay}, repeats, warmup)
            per_batch[str(batch)] = {k: summarize(v, batch) for k, v in times.items()}
            del graph
        result[name] = per_batch
        module.cpu()
        torch.cuda.empty_cache()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="PyTorch CUDA eager and CUDA-graph baselines per graph.")
    parser.add_argument("--bundle", required=True)
    parser.add_argument("--batch", default="1,8,32")
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--fp16", action="store_true")
    parser.add_argument("--json")
    args = parser.parse_args(argv)

    import torch
    from compare_reference import torch_modules
    from peak import details

    from mnm.provenance import utc_now
    from mnm.runtime.bundle import Bundle

    if not torch.cuda.is_available():
        print("error: this torch build sees no CUDA GPU (nothing was measured)", file=sys.stderr)
        return 2
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = True
    bundle = Bundle.open(args.bundle)
    batches = [int(b) for b in args.batch.split(",")]
    dtype = torch.float16 if args.fp16 else torch.float32
    report = {
        "format": "mnm-torch-cuda",
        "created": utc_now(),
        "bundle": args.bundle,
        "config": bundle.config.to_dict(),
        "precision": "fp16" if args.fp16 else "fp32 (TF32 off)",
        "gpu": torch.cuda.get_device_name(),
        "settings": {"batches": batches, "repeats": args.repeats, "warmup": args.warmup, "cudnn_benchmark": True},
        "machine": details(),
        "graphs": graph_baselines(bundle, torch_modules(bundle), batches, args.repeats, args.warmup, dtype),
    }
    text = json.dumps(report, indent=2) + "\n"
    if args.json:
        from mnm.atomic import write_text

        write_text(args.json, text)
    for name, per_batch in report["graphs"].items():
        cells = "; ".join(
            f"batch {b}: eager {r['eager']['median_ms']:.2f} ms, graph {r['cuda_graph']['median_ms']:.2f} ms"
            for b, r in per_batch.items()
        )
        print(f"{name:13s} {cells}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
