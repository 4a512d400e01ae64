"""Per-token int8 on a small graph: close to fp32, and each row reads only itself.

Graphs run in sessions built as ``local/minilm`` builds them (``onnx_session``):
on x86 without VNNI, onnxruntime's fast int8 kernels saturate and the backend
turns on its exact ones, so a harness without that would test what never runs.
"""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from gatehouse.providers.local.embedding_backends import onnx_session
from gatehouse.providers.local.quantise import GELU_MIN, quantise_rows

WIDTH, HIDDEN = 16, 48


def feed_forward(path: Path) -> list[str]:
    """x -> dense -> GELU (as torch exports it) -> smoothing Mul -> dense, plus biases."""
    rng = np.random.default_rng(7)
    tensors = {
        "w_in": rng.normal(size=(WIDTH, HIDDEN)),
        "b_in": rng.normal(size=HIDDEN),
        "w_out": rng.normal(size=(HIDDEN, WIDTH)) / 4,
        "b_out": rng.normal(size=WIDTH),
        "smooth_inverse": rng.uniform(0.5, 2.0, size=HIDDEN),
    }
    initializers = [
        numpy_helper.from_array(np.asarray(v, dtype=np.float32), k) for k, v in tensors.items()
    ]
    constants = [
        helper.make_node(
            "Constant", [], [name], value=numpy_helper.from_array(np.array(v, np.float32))
        )
        for name, v in (("root2", np.sqrt(2)), ("one", 1.0), ("half", 0.5))
    ]
    nodes = [
        *constants,
        helper.make_node("MatMul", ["x", "w_in"], ["h0"], name="in/MatMul"),
        helper.make_node("Add", ["b_in", "h0"], ["h"]),
        helper.make_node("Div", ["h", "root2"], ["d"]),
        helper.make_node("Erf", ["d"], ["e"]),
        helper.make_node("Add", ["e", "one"], ["e1"]),
        helper.make_node("Mul", ["h", "e1"], ["g0"]),
        helper.make_node("Mul", ["g0", "half"], ["g"]),
        helper.make_node("Mul", ["g", "smooth_inverse"], ["g_smoothed"]),
        helper.make_node("MatMul", ["g_smoothed", "w_out"], ["y0"], name="out/MatMul"),
        helper.make_node("Add", ["b_out", "y0"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "feed_forward",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "sequence", WIDTH])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", "sequence", WIDTH])],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, str(path))
    return ["in/MatMul", "out/MatMul"]


def run(
    path: Path, x: np.ndarray[Any, Any], *, exact_int8: bool | None = None
) -> np.ndarray[Any, Any]:
    session = onnx_session(path, exact_int8=exact_int8)
    (y,) = session.run(["y"], {"x": x.astype(np.float32)})
    return np.asarray(y)


# None: the kernels this CPU gets; True: the exact ones, what a CPU without VNNI
# runs, checked on every machine.
KERNELS = pytest.mark.parametrize("exact_int8", [None, True], ids=["this-cpu", "exact"])


@pytest.fixture
def graphs(tmp_path: Path) -> tuple[Path, Path]:
    plain, quantised = tmp_path / "fp32.onnx", tmp_path / "int8.onnx"
    quantise_rows(plain, quantised, feed_forward(plain))
    return plain, quantised


@KERNELS
def test_the_int8_graph_computes_the_fp32_function_closely(
    graphs: tuple[Path, Path], exact_int8: bool | None
) -> None:
    plain, quantised = graphs
    x = np.random.default_rng(1).normal(size=(3, 5, WIDTH))
    expected, got = run(plain, x), run(quantised, x, exact_int8=exact_int8)
    assert np.abs(got - expected).max() <= 0.02 * np.abs(expected).max()


def test_a_row_is_quantised_on_its_own_scale(graphs: tuple[Path, Path]) -> None:
    _, quantised = graphs
    rng = np.random.default_rng(2)
    x = rng.normal(size=(2, 4, WIDTH))
    together = run(quantised, x)
    # One row a hundred times larger, and the other rows' results stay as they were.
    x[1, 3] *= 100
    changed = run(quantised, x)
    np.testing.assert_allclose(
        np.delete(changed.reshape(8, WIDTH), 7, axis=0),
        np.delete(together.reshape(8, WIDTH), 7, axis=0),
        rtol=1e-6,
    )
    alone = run(quantised, x[:1, :2])
    np.testing.assert_allclose(alone, together[:1, :2], rtol=1e-6)


@KERNELS
def test_the_gelu_output_is_shifted_and_the_bias_takes_the_shift_back(
    graphs: tuple[Path, Path], exact_int8: bool | None
) -> None:
    plain, quantised = graphs
    before = Counter(n.op_type for n in onnx.load(str(plain)).graph.node)
    after = Counter(n.op_type for n in onnx.load(str(quantised)).graph.node)
    added = after - before
    # The dense input gets |x|; the GELU output gets the shift instead.
    assert (added["Abs"], added["Add"], added["MatMulIntegerToFloat"]) == (1, 1, 2)
    assert after["MatMul"] == 0
    # All-negative pre-activations: GELU outputs near its floor still come out right.
    x = -np.abs(np.random.default_rng(3).normal(size=(1, 6, WIDTH)))
    expected, got = run(plain, x), run(quantised, x, exact_int8=exact_int8)
    assert np.abs(got - expected).max() <= 0.02 * np.abs(expected).max()


def test_the_shift_is_the_gelu_floor_through_the_smoothing(graphs: tuple[Path, Path]) -> None:
    plain, quantised = graphs
    # No GELU output is below the bound, so none is clipped to zero...
    x = np.linspace(-6, 6, 1_200_001)
    gelu = 0.5 * x * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))
    assert GELU_MIN <= gelu.min() < GELU_MIN + 1e-4
    # ...and the smoothed activation is shifted by that floor over its factor.
    smoothing = numpy_helper.to_array(
        next(t for t in onnx.load(str(plain)).graph.initializer if t.name == "smooth_inverse")
    )
    shifts = [
        numpy_helper.to_array(t)
        for t in onnx.load(str(quantised)).graph.initializer
        if t.name.endswith("/shift")
    ]
    assert len(shifts) == 1
    np.testing.assert_allclose(shifts[0], -GELU_MIN * smoothing, rtol=1e-6)


def test_a_matmul_that_is_not_in_the_graph_is_an_error(tmp_path: Path) -> None:
    plain = tmp_path / "fp32.onnx"
    feed_forward(plain)
    with pytest.raises(ValueError, match="not in the graph"):
        quantise_rows(plain, tmp_path / "int8.onnx", ["in/MatMul", "missing/MatMul"])
    with pytest.raises(ValueError, match="not a MatMul with constant weights"):
        quantise_rows(plain, tmp_path / "int8.onnx", ["in/MatMul", ""])  # the bias Add
