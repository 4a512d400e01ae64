"""Pure array logic shared by the embedding backends: buckets, padding, pooling.

sentence-transformers turns BERT's token states into a sentence vector by
averaging the states of the real (unpadded) tokens and scaling the mean to unit
length. These functions do exactly that in numpy, so a backend that only
produces token states (ONNX Runtime) gives the same vectors.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

FloatArray = np.ndarray[Any, np.dtype[np.float32]]
IntArray = np.ndarray[Any, np.dtype[np.int64]]

# sentence-transformers clamps the token count and the norm with these floors so
# an all-padding row or a zero vector never divides by zero.
_MIN_TOKENS = 1e-9
_MIN_NORM = 1e-12


def length_buckets(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Indices grouped into batches of at most ``batch_size``, shortest first.

    Sorting by length before batching means each batch pads only to the
    longest of similar-length inputs, not to the longest input overall.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    order = sorted(range(len(lengths)), key=lambda index: lengths[index])
    return [order[start : start + batch_size] for start in range(0, len(order), batch_size)]


def pad_batch(sequences: Sequence[Sequence[int]], pad_id: int = 0) -> tuple[IntArray, IntArray]:
    """Right-pad token id lists to one length; returns ``(input_ids, attention_mask)``."""
    width = max((len(ids) for ids in sequences), default=0)
    input_ids = np.full((len(sequences), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(sequences), width), dtype=np.int64)
    for row, ids in enumerate(sequences):
        input_ids[row, : len(ids)] = ids
        mask[row, : len(ids)] = 1
    return input_ids, mask


def mean_pool(token_states: FloatArray, attention_mask: IntArray) -> FloatArray:
    """Average of each row's token states over the positions its mask marks real."""
    weights = attention_mask[:, :, None].astype(np.float32)
    summed = (token_states * weights).sum(axis=1)
    counts = np.clip(weights.sum(axis=1), _MIN_TOKENS, None)
    return np.asarray(summed / counts, dtype=np.float32)


def l2_normalise(vectors: FloatArray) -> FloatArray:
    """Each row scaled to unit length (a zero row stays zero)."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.asarray(vectors / np.clip(norms, _MIN_NORM, None), dtype=np.float32)
