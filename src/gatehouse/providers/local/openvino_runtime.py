"""MiniLM's exported graphs on OpenVINO's CPU plugin: the ``openvino`` backend
(the fp32 graph) and ``openvino-int8`` (the ``onnx-int8`` graph).

OpenVINO reads the same ONNX files as the ONNX Runtime backends and compiles
them for this CPU. On CPUs with AMX (Intel Sapphire Rapids and later) it runs the
graph in bf16 on the AMX tiles by default, with fp32 accumulation: on a
2-core Xeon of that kind it embedded at about 1.8x ``onnx-int8`` with vectors
closer to fp32's (cosine 0.99997 at worst over 300 msmarco passages, against
0.9989 for int8; docs/performance.md). Elsewhere it runs fp32 and is no
faster than ONNX Runtime to speak of, which is why ``auto`` picks it only
where the CPU lists ``amx_bf16`` and the package is installed
(``pip install 'gatehouse[openvino]'``). The int8 graph it runs at about
1.3x ONNX Runtime on CPUs with VNNI but no AMX, where ``auto`` picks
``openvino-int8``.

Each compiled model keeps one infer request; like the ONNX Runtime sessions,
a graph is called by one thread at a time (the provider holds a lock).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gatehouse.core.extras import needs_extra


class OpenVinoGraph:
    """One compiled model, called like an ONNX Runtime session (``run``)."""

    def __init__(
        self,
        model: Path | Any,
        *,
        threads: int | None = None,
        precision: str | None = None,
        dynamic_quantization_group_size: int | None = None,
    ) -> None:
        """Compile ``model``: an ONNX file, or an ``openvino.Model`` built in memory.

        ``dynamic_quantization_group_size`` sets how many channels share one
        scale when OpenVINO quantises activations on the fly for products with
        int8 weights (benchmarks only; docs/performance.md).
        """
        with needs_extra("openvino", "The openvino embedding backend"):
            import openvino

        # LATENCY: one stream over all the threads, as a batch is one call.
        config: dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY"}
        if threads is not None:
            config["INFERENCE_NUM_THREADS"] = threads
        if precision is not None:  # "f32" keeps fp32 on a CPU that would run bf16
            config["INFERENCE_PRECISION_HINT"] = precision
        if dynamic_quantization_group_size is not None:
            config["DYNAMIC_QUANTIZATION_GROUP_SIZE"] = dynamic_quantization_group_size
        source = str(model) if isinstance(model, Path) else model
        self._compiled = openvino.Core().compile_model(source, "CPU", config)
        self._request = self._compiled.create_infer_request()
        self._output = self._compiled.output("token_states")

    @property
    def precision(self) -> str:
        """What OpenVINO computes in on this CPU (``bf16`` with AMX, else ``f32``)."""
        hint = self._compiled.get_property("INFERENCE_PRECISION_HINT")  # an openvino.Type
        return str(hint.to_string())

    def run(self, output_names: list[str], input_feed: Mapping[str, Any]) -> list[Any]:
        """The token states for ``input_feed`` (``output_names`` is always theirs)."""
        return [self._request.infer(dict(input_feed))[self._output]]
