"""FP16 graphs from the checked FP32 graphs: fp16 weights and activations, float32 inputs and outputs.

Converting the ONNX graph (rather than exporting a half-precision torch module again) keeps the
fp16 graph node-for-node the fp32 one and costs no second export. Float32 I/O means a caller
feeds and reads the same arrays for either precision; the Casts at the edges are the only extra
nodes. A strongly typed TensorRT network takes its precision from these types.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

IO_DTYPE = "float32"
FLOAT, HALF = TensorProto.FLOAT, TensorProto.FLOAT16
# Inputs that the ONNX spec types as float32 whatever the data type (Resize roi and scales).
_KEEP_FLOAT = {("Resize", 1), ("Resize", 2)}


def to_fp16(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of ``model`` computing in float16, with float32 graph inputs and outputs.

    The exporter's graphs keep every constant as an initializer (no Constant nodes, no Casts), so
    converting the initializers and casting at the edges retypes the whole graph; the ONNX checker
    that export runs on the result refuses a graph where that does not hold (mixed float types).
    """
    model = _copy(model)
    graph = model.graph
    keep = {node.input[i] for node in graph.node for i in range(len(node.input)) if (node.op_type, i) in _KEEP_FLOAT}
    for init in graph.initializer:
        if init.data_type == FLOAT and init.name not in keep:
            init.CopyFrom(_half_tensor(init))
    _cast_edges(graph)
    del graph.value_info[:]
    return onnx.shape_inference.infer_shapes(model)


def _cast_edges(graph: onnx.GraphProto) -> None:
    """Cast float32 inputs to fp16 on entry and fp16 outputs back to float32 on exit."""
    casts_in, casts_out = [], []
    for value in graph.input:
        if value.type.tensor_type.elem_type != FLOAT:
            continue
        inner = value.name + "_fp16"
        for node in graph.node:
            node.input[:] = [inner if name == value.name else name for name in node.input]
        casts_in.append(helper.make_node("Cast", [value.name], [inner], to=HALF, name=f"cast_in_{value.name}"))
    for value in graph.output:
        if value.type.tensor_type.elem_type != FLOAT:
            continue
        inner = value.name + "_fp16"
        for node in graph.node:
            node.output[:] = [inner if name == value.name else name for name in node.output]
            node.input[:] = [inner if name == value.name else name for name in node.input]
        casts_out.append(helper.make_node("Cast", [inner], [value.name], to=FLOAT, name=f"cast_out_{value.name}"))
    nodes = casts_in + list(graph.node) + casts_out
    del graph.node[:]
    graph.node.extend(nodes)


def _half_tensor(tensor: onnx.TensorProto) -> onnx.TensorProto:
    array = numpy_helper.to_array(tensor).astype(np.float16)
    return numpy_helper.from_array(array, tensor.name)


def _copy(model: onnx.ModelProto) -> onnx.ModelProto:
    out = onnx.ModelProto()
    out.CopyFrom(model)
    return out
