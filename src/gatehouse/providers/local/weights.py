"""The chat model's weights, loaded for generation with kernels that hold on this CPU.

llama.cpp's CPU backend can move weights into "extra" buffer types with their
own matrix kernels: repacked layouts for AVX2/AVX-512, and AMX tiles on Intel
CPUs that have AMX (Sapphire Rapids and later). On such a CPU (a 2-core Xeon
with AMX, llama-cpp-python 0.3.36) the AMX kernels crashed the process with a
segmentation fault on the first decode of more than one token with the shipped
SmolLM2 Q4_1 model, so where the CPU lists AMX the extra buffer types are off.
Q4_1 has no repacked layout, so elsewhere nothing changes for the shipped
model, and a user's Q4_0 model keeps its repacked kernels on other CPUs.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from gatehouse.providers.local.cpu import CPUINFO, has_amx, read_cpuinfo

log = logging.getLogger("gatehouse.local.chat")


def extra_buffers_safe(cpuinfo: Path = CPUINFO) -> bool:
    """Whether llama.cpp's extra buffer types (AMX, repacking) may be used here."""
    return not has_amx(read_cpuinfo(cpuinfo))


def generation_weights(llama: Any, path: Path, cpuinfo: Path = CPUINFO) -> Any:
    """The llama.cpp model object a generation context runs on: ``llama``'s own
    (a ``llama_cpp.Llama`` loaded from ``path``), or, where the CPU has AMX, the
    same file loaded again without the extra buffer types, which ``Llama``
    cannot turn off."""
    if extra_buffers_safe(cpuinfo):
        return llama._model
    import llama_cpp
    from llama_cpp import _internals

    params = llama_cpp.llama_model_default_params()
    params.use_extra_bufts = False
    log.info("local/smollm2: AMX on this CPU; llama.cpp's AMX kernels are not used")
    return _internals.LlamaModel(path_model=str(path), params=params, verbose=False)
