"""Per-token int8 for the smoothed MiniLM graph: the same vectors at any batching.

Every MatMul with constant weights ``W`` (the six projections of each layer)
becomes an integer product:

- ``W`` is quantised once to int8 with one scale per output column;
- its input ``X`` is quantised on the fly with one scale per token (row):
  ``s = max|x| / 127`` over that token's channels only.

onnxruntime's own dynamic quantisation (``quantize_dynamic``) gives the whole
``[batch, sequence, channel]`` tensor one scale, so a token's vector depended on
the other texts in its batch and on the padding: the same passage embedded
alone and in a batch of 32 differed (cosine 0.990), and retrieval moved by up
to 0.006 nDCG@10 with the batching alone. With a scale per row, a token's
quantisation reads nothing but that token, so batching changes nothing (to
float rounding) and the finer scale is also more accurate.

The input of each feed-forward down-projection is a GELU output, which never
goes below ``GELU_MIN``: it is shifted up by that bound and quantised unsigned,
which halves its step; the shift times the dequantised weights is taken off
the bias, so the product is unchanged. That activation carried half of the
remaining error.

The quantising nodes (Abs, ReduceMax, Max, Mul, Div, QuantizeLinear) are plain
ONNX; the product is onnxruntime's ``MatMulIntegerToFloat`` (int8 weights,
uint8 activations, int32 accumulation, scaled to float by the weight scales)
followed by one Mul by the row scales.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from onnx import ModelProto, NodeProto, TensorProto

# erf-GELU's minimum is -0.16997 (at x = -0.75); a little below it, so no GELU
# output is clipped.
GELU_MIN = -0.1700
_TINY = 1e-12  # the scale of an all-zero row, so it divides by something
_PREFIX = "rowq"


def quantise_rows(source: Path, out: Path, nodes: list[str]) -> None:
    """Write ``source`` to ``out`` with the MatMuls named in ``nodes`` in int8."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(source))
    weights = {tensor.name: tensor for tensor in model.graph.initializer}
    producers = {output: node for node in model.graph.node for output in node.output}
    wanted = set(nodes)
    readers: dict[str, list[NodeProto]] = defaultdict(list)
    for node in model.graph.node:
        if node.name in wanted:
            if node.op_type != "MatMul" or node.input[1] not in weights:
                raise ValueError(f"{node.name} is not a MatMul with constant weights")
            readers[node.input[0]].append(node)
    if sum(map(len, readers.values())) != len(wanted):
        raise ValueError("a MatMul to quantise is not in the graph")

    added: list[TensorProto] = [
        numpy_helper.from_array(np.array(value, dtype=dtype), f"{_PREFIX}/{name}")
        for name, value, dtype in (
            ("one", 1.0, np.float32),
            ("tiny", _TINY, np.float32),
            ("inv127", 1 / 127, np.float32),
            ("inv255", 1 / 255, np.float32),
            ("zp128", 128, np.uint8),
            ("zp0", 0, np.uint8),
        )
    ]
    quantisers: dict[str, list[NodeProto]] = {}
    replacements: dict[str, list[NodeProto]] = {}
    for activation, group in readers.items():
        shift = _gelu_shift(activation, producers, weights)
        if shift is not None:
            added.append(numpy_helper.from_array(shift, f"{activation}/{_PREFIX}/shift"))
        quantisers[activation] = _quantiser(activation, shifted=shift is not None)
        for node in group:
            w = numpy_helper.to_array(weights[node.input[1]]).astype(np.float32)
            w_scale = (np.maximum(np.abs(w).max(axis=0), _TINY) / 127).astype(np.float32)
            w_q = np.clip(np.round(w / w_scale), -127, 127).astype(np.int8)
            added.append(numpy_helper.from_array(w_q, f"{node.name}/{_PREFIX}/w"))
            added.append(numpy_helper.from_array(w_scale, f"{node.name}/{_PREFIX}/w_scale"))
            # One zero point per node, not shared: onnxruntime's precise mode for
            # CPUs without VNNI rewrites each node's weights and zero point to uint8.
            added.append(
                numpy_helper.from_array(np.array(0, np.int8), f"{node.name}/{_PREFIX}/w_zp")
            )
            if shift is not None:
                lifted = np.broadcast_to(shift, w.shape[:1]) @ (w_q.astype(np.float32) * w_scale)
                _take_off_bias(node, lifted, model, weights)
            replacements[node.output[0]] = _integer_product(
                node, activation, shifted=shift is not None
            )

    # Each quantiser right after the node producing its input (or first, for a
    # graph input) keeps the graph sorted.
    ordered = [
        node for graph_input in model.graph.input for node in quantisers.pop(graph_input.name, [])
    ]
    for node in model.graph.node:
        ordered.extend(replacements.get(node.output[0], [node]))
        for output in node.output:
            ordered.extend(quantisers.pop(output, []))
    if quantisers:
        raise ValueError("an activation to quantise is not produced by any node")
    still_read = {name for node in ordered for name in node.input}
    replaced = {n.input[1] for g in readers.values() for n in g if n.input[1] not in still_read}
    kept = [tensor for tensor in model.graph.initializer if tensor.name not in replaced]
    del model.graph.initializer[:]
    model.graph.initializer.extend(kept + added)
    del model.graph.node[:]
    model.graph.node.extend(ordered)
    if not any(opset.domain == "com.microsoft" for opset in model.opset_import):
        model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    onnx.save(model, str(out))


def _quantiser(activation: str, *, shifted: bool) -> list[NodeProto]:
    """Nodes making ``{activation}/rowq/q`` (uint8) and ``.../scale`` (one per token).

    Signed values are stored with zero point 128 and a step of ``max|x| / 127``;
    a shifted (non-negative) activation with zero point 0 and ``max x / 255``.
    """
    from onnx import helper

    p = f"{activation}/{_PREFIX}"
    if shifted:
        values, inverse_step, zero = f"{p}/shifted", "inv255", "zp0"
        first = helper.make_node("Add", [activation, f"{p}/shift"], [values])
        magnitudes = values
    else:
        values, inverse_step, zero = activation, "inv127", "zp128"
        magnitudes = f"{p}/abs"
        first = helper.make_node("Abs", [activation], [magnitudes])
    return [
        first,
        helper.make_node("ReduceMax", [magnitudes], [f"{p}/peak"], axes=[-1], keepdims=1),
        helper.make_node("Max", [f"{p}/peak", f"{_PREFIX}/tiny"], [f"{p}/floor"]),
        helper.make_node("Mul", [f"{p}/floor", f"{_PREFIX}/{inverse_step}"], [f"{p}/scale"]),
        helper.make_node("Div", [values, f"{p}/scale"], [f"{p}/steps"]),
        helper.make_node(
            "QuantizeLinear", [f"{p}/steps", f"{_PREFIX}/one", f"{_PREFIX}/{zero}"], [f"{p}/q"]
        ),
    ]


def _integer_product(node: NodeProto, activation: str, *, shifted: bool) -> list[NodeProto]:
    """``node``'s output as int8 weights times the quantised activation, rescaled."""
    from onnx import helper

    p, product = f"{activation}/{_PREFIX}", f"{node.name}/{_PREFIX}/product"
    return [
        helper.make_node(
            "MatMulIntegerToFloat",
            [
                f"{p}/q",
                f"{node.name}/{_PREFIX}/w",
                f"{_PREFIX}/one",
                f"{node.name}/{_PREFIX}/w_scale",
                f"{_PREFIX}/{'zp0' if shifted else 'zp128'}",
                f"{node.name}/{_PREFIX}/w_zp",
            ],
            [product],
            domain="com.microsoft",
        ),
        helper.make_node("Mul", [product, f"{p}/scale"], [node.output[0]]),
    ]


def _gelu_shift(
    activation: str, producers: dict[str, NodeProto], weights: dict[str, TensorProto]
) -> np.ndarray | None:
    """``-GELU_MIN`` per channel if ``activation`` is a (smoothed) GELU output, else None.

    The exported GELU is ``Mul(Mul(x, Add(Erf(x / sqrt 2), 1)), 0.5)``; smoothing
    may have put a per-channel ``Mul`` by a positive constant after it.
    """
    from onnx import numpy_helper

    factor = np.ones(1, dtype=np.float32)
    node = producers.get(activation)
    if node is not None and node.op_type == "Mul" and node.input[1] in weights:
        factor = numpy_helper.to_array(weights[node.input[1]]).astype(np.float32)
        node = producers.get(node.input[0])
    if node is None or not _is_gelu(node, producers) or np.any(factor <= 0):
        return None
    return (-GELU_MIN * factor).astype(np.float32)


def _is_gelu(node: NodeProto, producers: dict[str, NodeProto]) -> bool:
    """Whether ``node`` ends ``Mul(Mul(x, Add(Erf(..), 1)), 0.5)``."""

    def made_by(name: str, op_type: str) -> NodeProto | None:
        producer = producers.get(name)
        return producer if producer is not None and producer.op_type == op_type else None

    if node.op_type != "Mul":
        return False
    for outer in node.input:
        inner = made_by(outer, "Mul")
        for name in inner.input if inner is not None else ():
            add = made_by(name, "Add")
            if add is not None and any(made_by(i, "Erf") for i in add.input):
                return True
    return False


def _take_off_bias(
    node: NodeProto, correction: np.ndarray, model: ModelProto, weights: dict[str, TensorProto]
) -> None:
    """Subtract ``correction`` from the bias that the Add after ``node`` adds."""
    from onnx import numpy_helper

    adds = [n for n in model.graph.node if n.op_type == "Add" and node.output[0] in n.input]
    biases = [name for add in adds for name in add.input if name in weights]
    if len(adds) != 1 or len(biases) != 1:
        raise ValueError(f"{node.name} is not followed by one bias Add")
    bias = numpy_helper.to_array(weights[biases[0]]).astype(np.float32) - correction
    weights[biases[0]].CopyFrom(numpy_helper.from_array(bias.astype(np.float32), biases[0]))
