"""The array logic the ONNX backend relies on to match sentence-transformers."""

from __future__ import annotations

import numpy as np
import pytest

from gatehouse.providers.local.pooling import l2_normalise, length_buckets, mean_pool, pad_batch


def test_buckets_are_sorted_by_length_and_cover_every_index_once() -> None:
    lengths = [9, 2, 7, 2, 5, 11, 3]
    buckets = length_buckets(lengths, 3)
    assert [len(b) for b in buckets] == [3, 3, 1]
    flat = [index for bucket in buckets for index in bucket]
    assert sorted(flat) == list(range(len(lengths)))
    assert [lengths[i] for i in flat] == sorted(lengths)


def test_buckets_of_nothing_and_bad_size() -> None:
    assert length_buckets([], 4) == []
    with pytest.raises(ValueError, match="batch_size"):
        length_buckets([1], 0)


def test_pad_batch_right_pads_and_marks_real_tokens() -> None:
    ids, mask = pad_batch([[101, 7, 102], [101, 102]])
    assert ids.tolist() == [[101, 7, 102], [101, 102, 0]]
    assert mask.tolist() == [[1, 1, 1], [1, 1, 0]]
    assert ids.dtype == np.int64


def test_mean_pool_ignores_padding_whatever_it_holds() -> None:
    rng = np.random.default_rng(0)
    real = rng.normal(size=(1, 3, 4)).astype(np.float32)
    padded = np.concatenate([real, np.full((1, 2, 4), 1e6, np.float32)], axis=1)
    mask = np.array([[1, 1, 1, 0, 0]])
    pooled = mean_pool(padded, mask)
    np.testing.assert_allclose(pooled, real.mean(axis=1), rtol=1e-6)
    assert pooled.dtype == np.float32


def test_mean_pool_of_an_all_padding_row_is_zero_not_nan() -> None:
    pooled = mean_pool(np.ones((1, 2, 3), np.float32), np.zeros((1, 2), np.int64))
    assert np.all(pooled == 0)


def test_l2_normalise_gives_unit_rows_and_keeps_zero_rows() -> None:
    vectors = np.array([[3.0, 4.0], [0.0, 0.0], [1e-3, 0.0]], np.float32)
    unit = l2_normalise(vectors)
    np.testing.assert_allclose(unit, [[0.6, 0.8], [0.0, 0.0], [1.0, 0.0]], rtol=1e-6)
