"""How local/minilm's ONNX backends cut a run's inputs into padded batches."""

from __future__ import annotations

import pytest

from gatehouse.providers.local.embedding_backends import token_buckets


def padded(lengths: list[int], buckets: list[list[int]]) -> int:
    return sum(max(lengths[i] for i in bucket) * len(bucket) for bucket in buckets)


def test_every_input_once_shortest_first_and_no_batch_over_the_size() -> None:
    lengths = [50, 12, 12, 90, 13, 49, 11, 200, 51, 12]
    buckets = token_buckets(lengths, 3)
    assert sorted(i for bucket in buckets for i in bucket) == list(range(len(lengths)))
    assert all(1 <= len(bucket) <= 3 for bucket in buckets)
    flat = [lengths[i] for bucket in buckets for i in bucket]
    assert flat == sorted(lengths)


def test_a_jump_in_length_is_cut_rather_than_padded_to() -> None:
    # Fixed batches of four would pad three 10-token inputs to 100.
    lengths = [10] * 7 + [100] * 4
    buckets = token_buckets(lengths, 4, run_cost=5)
    assert sorted(sorted(lengths[i] for i in bucket) for bucket in buckets) == [
        [10, 10, 10],
        [10, 10, 10, 10],
        [100, 100, 100, 100],
    ]
    assert padded(lengths, buckets) == sum(lengths)


def test_equal_lengths_fill_whole_batches_when_runs_cost_something() -> None:
    buckets = token_buckets([30] * 10, 4)
    assert len(buckets) == 3  # as few runs as the size allows; none is padded
    assert sorted(len(bucket) for bucket in buckets) == [2, 4, 4]


def test_a_run_that_costs_more_than_its_padding_keeps_inputs_together() -> None:
    lengths = [20, 21, 22, 23]
    assert token_buckets(lengths, 4, run_cost=1000) == [[0, 1, 2, 3]]
    assert len(token_buckets(lengths, 4, run_cost=0)) == 4  # free runs: no padding at all


def test_no_inputs_and_a_bad_size() -> None:
    assert token_buckets([], 8) == []
    with pytest.raises(ValueError, match="max_size"):
        token_buckets([1], 0)
