"""Multiply-accumulates per image counted from an ONNX graph (Conv, ConvTranspose, Gemm, MatMul).

Counted on the exported graph itself, so the number in the manifest describes what a backend
runs (the joint-conv rewrite included) and ``mnm info`` and the benchmarks read it without torch.
Shapes come from ONNX shape inference; the symbolic batch axis counts as 1.
"""

from __future__ import annotations

import math

import onnx


def count_macs(model: onnx.ModelProto) -> int:
    """MACs per image of the whole graph."""
    inferred = onnx.shape_inference.infer_shapes(model)
    shapes = _shapes(inferred.graph)
    total = 0
    for node in inferred.graph.node:
        if node.op_type in _COUNTERS:
            total += _COUNTERS[node.op_type](node, shapes)
    return int(total)


def _shapes(graph: onnx.GraphProto) -> dict[str, list[int | None]]:
    """Known shapes by tensor name; a symbolic dimension is None."""
    shapes = {init.name: list(init.dims) for init in graph.initializer}
    for value in [*graph.input, *graph.value_info, *graph.output]:
        dims = value.type.tensor_type.shape.dim
        shapes[value.name] = [d.dim_value if d.HasField("dim_value") else None for d in dims]
    return shapes


def _per_image(shape: list[int | None]) -> int:
    """Elements per image: a leading symbolic (batch) axis counts as 1."""
    return math.prod(1 if d is None else d for d in shape)


def _conv(node, shapes) -> int:
    # out [N, M, *spatial]; weight [M, C/group, *kernel]: each output element is C/group·k MACs.
    return _per_image(shapes[node.output[0]]) * math.prod(shapes[node.input[1]][1:])


def _conv_transpose(node, shapes) -> int:
    # in [N, C, *spatial]; weight [C, M/group, *kernel]: each input element scatters M/group·k MACs.
    return _per_image(shapes[node.input[0]]) * math.prod(shapes[node.input[1]][1:])


def _gemm(node, shapes) -> int:
    trans_a = next((a.i for a in node.attribute if a.name == "transA"), 0)
    a = shapes[node.input[0]]
    inner = a[0] if trans_a else a[1]
    return _per_image(shapes[node.output[0]]) * inner


def _matmul(node, shapes) -> int:
    return _per_image(shapes[node.output[0]]) * shapes[node.input[0]][-1]


_COUNTERS = {"Conv": _conv, "ConvTranspose": _conv_transpose, "Gemm": _gemm, "MatMul": _matmul}
