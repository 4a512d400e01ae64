"""What this process sees of the CPU, and whether int8 matrix products are faster than fp32.

Run it plain and under the mask to see the mask take hold:

    .venv/bin/python bench/cpumask/check.py
    .venv/bin/python bench/cpumask/run.py --profile skylake-avx512 -- \\
        .venv/bin/python bench/cpumask/check.py

It prints the VNNI/AVX-512/AMX features numpy found by CPUID, PyTorch's CPU
capability, gatehouse's ``has_vnni`` (from ``/proc/cpuinfo``), and ONNX Runtime
timings of one (M x K) @ (K x N) product as ``MatMul`` in fp32 and as
``MatMulInteger`` (uint8 x int8) on its default and on its exact uint8 kernels
(``session.x64quantprecision``, what ``local/minilm`` runs without VNNI), with
the rate in multiply-adds a second. The default shape is MiniLM's widest
projection for a batch of 32 passages of 64 tokens (2048 x 384 @ 384 x 1536),
``--threads 0`` all cores: what the model's products can reach at best.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import numpy as np
import onnx
import onnxruntime
import torch
from onnx import TensorProto, helper, numpy_helper

from gatehouse.providers.local.cpu import has_amx, has_vnni, read_cpuinfo

SHOWN = ("AVX512F", "AVX512BW", "AVX512VNNI", "AVX512BF16", "AVX512FP16", "AVX512_SPR")


def product_graph(m: int, k: int, n: int, *, integer: bool) -> bytes:
    rng = np.random.default_rng(0)
    if integer:
        weight = numpy_helper.from_array(rng.integers(-127, 128, (k, n), dtype=np.int8), "w")
        node = helper.make_node("MatMulInteger", ["x", "w"], ["y"])
        x_type, y_type = TensorProto.UINT8, TensorProto.INT32
    else:
        weight = numpy_helper.from_array(rng.standard_normal((k, n)).astype(np.float32), "w")
        node = helper.make_node("MatMul", ["x", "w"], ["y"])
        x_type, y_type = TensorProto.FLOAT, TensorProto.FLOAT
    graph = helper.make_graph(
        [node],
        "product",
        [helper.make_tensor_value_info("x", x_type, [m, k])],
        [helper.make_tensor_value_info("y", y_type, [m, n])],
        [weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    return model.SerializeToString()


def time_product(graph: bytes, feed: Any, *, exact: bool, runs: int, threads: int) -> float:
    """Median milliseconds of one run on ``threads`` threads (0: onnxruntime's default)."""
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    if exact:
        options.add_session_config_entry("session.x64quantprecision", "1")
    session = onnxruntime.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
    session.run(None, {"x": feed})
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        session.run(None, {"x": feed})
        times.append((time.perf_counter() - began) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", default="2048,384,1536", help="M,K,N (default 2048,384,1536)")
    parser.add_argument("--threads", type=int, default=0, help="0: all cores (default)")
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    features = np._core._multiarray_umath.__cpu_features__  # type: ignore[attr-defined]
    cpuinfo = read_cpuinfo()
    print("numpy (CPUID): " + ", ".join(f"{name} {features.get(name)}" for name in SHOWN))
    print(f"torch cpu capability (CPUID): {torch.backends.cpu.get_cpu_capability()}")
    print(f"gatehouse (/proc/cpuinfo): has_vnni {has_vnni(cpuinfo)}, has_amx {has_amx(cpuinfo)}")
    m, k, n = (int(part) for part in args.shape.split(","))
    rng = np.random.default_rng(1)
    timing = {"runs": args.runs, "threads": args.threads}
    fp32 = time_product(
        product_graph(m, k, n, integer=False),
        rng.standard_normal((m, k)).astype(np.float32),
        exact=False,
        **timing,
    )
    integer = product_graph(m, k, n, integer=True)
    feed = rng.integers(0, 256, (m, k), dtype=np.uint8)
    fast = time_product(integer, feed, exact=False, **timing)
    exact = time_product(integer, feed, exact=True, **timing)
    threads = args.threads or "all"
    print(
        f"onnxruntime {onnxruntime.__version__}, {m}x{k} @ {k}x{n}, {threads} threads, "
        f"median of {args.runs}:"
    )
    for name, ms in (
        ("fp32 MatMul", fp32),
        ("MatMulInteger", fast),
        ("MatMulInteger, exact kernels", exact),
    ):
        rate = m * k * n / ms / 1e6
        print(f"  {name}: {ms:.2f} ms, {rate:.0f} G multiply-adds/s, {fp32 / ms:.2f}x fp32")
    onnx.checker.check_model(onnx.load_from_string(integer))


if __name__ == "__main__":
    main()
