"""PyTorch baselines per exported graph: eager, and on CUDA also CUDA-graph replay (the graph
captured once at each batch size, inputs copied into its static buffers, then replayed), so the
runtime's GPU backends can be compared with the best that PyTorch itself offers.

``python benchmarks/torch_cuda.py (--preset P [--seed N] | --bundle BUNDLE) [--batch 1,8,64] [--json out.json]``:
the networks are the preset's random-init weights (no export needed) or the bundle's (rebuilt from
its manifest). fp32 with TF32 off, like the fp32 graphs; ``--fp16`` runs the modules in half
precision instead. ``--device cpu`` times eager alone (a smoke run where there is no GPU).
"""

from __future__ import annotations

import argparse
import json
import sys
from types import SimpleNamespace

import numpy as np


def spec_shapes(cfg):
    """The graphs' input names and shapes from the export specs, in the form ``graph_inputs`` reads
    from a bundle (``.graph(name).inputs``), for a preset that was never exported."""
    from mnm.export.specs import SPECS

    def graph(name):
        spec = SPECS[name]
        return SimpleNamespace(inputs=[SimpleNamespace(name=t, shape=("batch", *spec.shape(t, cfg)))
                                       for t in spec.inputs])

    return SimpleNamespace(graph=graph)


def graph_baselines(shapes, graphs, modules, batches, repeats: int, warmup: int, dtype, device: str) -> dict:
    """Per graph and batch: eager (and on CUDA, CUDA-graph replay) latency; each includes the host
    copy of the inputs in and of the first output back, as the runtime's backends do."""
    import torch

    from mnm.export.specs import SPECS, ExportModules
    from mnm.runtime.bench import graph_inputs, interleaved, summarize

    modules = ExportModules(*modules)
    result = {}
    for name in graphs:
        module = SPECS[name].module(modules).to(device, dtype).eval()
        per_batch = {}
        for batch in batches:
            host = {k: torch.from_numpy(v).to(dtype)
                    for k, v in graph_inputs(shapes, name, batch, np.random.default_rng(batch)).items()}
            order = SPECS[name].inputs

            @torch.inference_mode()
            def eager(module=module, host=host, order=order):
                out = module(*(host[k].to(device, non_blocking=True) for k in order))
                first = out[0] if isinstance(out, tuple) else out
                return first.cpu()

            runs = {"eager": eager}
            if device == "cuda":
                runs["cuda_graph"] = _captured(module, host, order)
            times = interleaved(runs, repeats, warmup)
            per_batch[str(batch)] = {k: summarize(v, batch) for k, v in times.items()}
        result[name] = per_batch
        module.cpu()
        if device == "cuda":
            torch.cuda.empty_cache()
    return result


def _captured(module, host: dict, order):
    """A CUDA graph of ``module`` on static input buffers; the returned callable copies the host
    inputs in, replays, and copies the first output back."""
    import torch

    static = [host[k].to("cuda") for k in order]
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

    def replay():
        for buffer, key in zip(static, order, strict=True):
            buffer.copy_(host[key], non_blocking=True)
        graph.replay()
        return captured.cpu()

    return replay


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="PyTorch eager and CUDA-graph baselines per graph.")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--preset", help="Random-init weights of this preset (paper, lite, tiny).")
    source.add_argument("--bundle", help="The weights a bundle was exported from.")
    parser.add_argument("--seed", type=int, default=0, help="Weight seed with --preset.")
    parser.add_argument("--batch", default="1,8,64")
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--fp16", action="store_true")
    parser.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    parser.add_argument("--json")
    args = parser.parse_args(argv)

    import torch
    from peak import details

    from mnm.provenance import utc_now

    if args.device == "cuda" and not torch.cuda.is_available():
        print(f"error: torch {torch.__version__} sees no CUDA GPU (nothing was measured)", file=sys.stderr)
        return 2
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = True
    if args.preset:
        from mnm.config import PRESETS
        from mnm.export import random_init_modules
        from mnm.export.specs import graphs_for

        cfg = PRESETS[args.preset]
        modules = random_init_modules(cfg, args.seed)
        shapes, graphs = spec_shapes(cfg), [spec.name for spec in graphs_for(modules)]
    else:
        from compare_reference import torch_modules

        from mnm.runtime.bundle import Bundle

        shapes = Bundle.open(args.bundle)
        cfg, modules, graphs = shapes.config, torch_modules(shapes), list(shapes.graphs)
    batches = [int(b) for b in args.batch.split(",")]
    dtype = torch.float16 if args.fp16 else torch.float32
    report = {
        "format": "mnm-torch-cuda",
        "created": utc_now(),
        "weights": args.bundle or f"{args.preset} random-init seed {args.seed}",
        "config": cfg.to_dict(),
        "precision": "fp16" if args.fp16 else "fp32 (TF32 off)",
        "device": torch.cuda.get_device_name() if args.device == "cuda" else "cpu",
        "torch": torch.__version__,
        "settings": {"batches": batches, "repeats": args.repeats, "warmup": args.warmup, "cudnn_benchmark": True},
        "machine": details(),
        "graphs": graph_baselines(shapes, graphs, modules, batches, args.repeats, args.warmup, dtype, args.device),
    }
    if args.json:
        from mnm.atomic import write_text

        write_text(args.json, json.dumps(report, indent=2) + "\n")
    for name, per_batch in report["graphs"].items():
        cells = "; ".join(
            f"batch {b}: " + ", ".join(f"{kind} {r[kind]['median_ms']:.2f} ms" for kind in r)
            for b, r in per_batch.items()
        )
        print(f"{name:13s} {cells}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
