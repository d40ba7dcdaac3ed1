"""One ONNX graph per network with torch's dynamo exporter (``torch.onnx.export(dynamo=True)``).

Why dynamo: in torch 2.13 it is the maintained exporter, it gives every input and output the one
symbolic ``batch`` axis, and its onnxscript clean-up (constant folding, Conv+BN fusion, no Identity
chains) yields the leaner graph; the TorchScript exporter is deprecated. The clean-up is the
``optimize`` flag, which the bundle keeps only when parity holds.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from pathlib import Path

import onnx
import torch

from mnm.config import ModelConfig
from mnm.errors import MnmError
from mnm.export.specs import BATCH, GraphModule, GraphSpec

EXPORTER = "torch.onnx.export(dynamo=True)"
TRACE_BATCH = 2  # the example batch: 1 would let torch.export specialise the batch axis to 1


def example_inputs(spec: GraphSpec, cfg: ModelConfig) -> tuple[torch.Tensor, ...]:
    """Tracing inputs; their values do not matter, only shapes and dtypes."""
    gen = torch.Generator().manual_seed(0)
    return tuple(torch.rand((TRACE_BATCH, *spec.shape(name, cfg)), generator=gen) for name in spec.inputs)


def export_graph(
    spec: GraphSpec, module: GraphModule, cfg: ModelConfig, path: Path, opset: int, optimize: bool = True
) -> onnx.ModelProto:
    """Export ``module`` as ``spec`` to ``path`` (weights inside the file) and return the checked model."""
    module.eval()
    batch = torch.export.Dim(BATCH)
    dynamic = tuple({0: batch} for _ in spec.inputs)
    with _quiet():
        program = torch.onnx.export(
            module,
            example_inputs(spec, cfg),
            dynamo=True,
            opset_version=opset,
            input_names=list(spec.inputs),
            output_names=list(spec.outputs),
            dynamic_shapes=(dynamic,),  # forward(*inputs): one varargs tuple
            optimize=optimize,
            verbose=False,
        )
        program.save(str(path), external_data=False)
    model = onnx.load(str(path))
    check_graph(model, path)
    return model


def check_graph(model: onnx.ModelProto, path: Path) -> None:
    """The ONNX checker with full type and shape inference; one line naming the file if it fails."""
    try:
        onnx.checker.check_model(model, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        first = str(exc).strip().splitlines()[0]
        raise MnmError(f"{path}: the graph fails the ONNX checker: {first}") from None


@contextlib.contextmanager
def _quiet():
    """The exporter reports through warnings, loggers and stdout; keep the CLI's output clean."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)
