"""Continuous batching of the in-process chat model: concurrent requests, batched or one at a time.

Sends ``--concurrency`` chat requests at once to ``local/smollm2`` (greedy, a
fixed number of tokens each, the same prompts every round) through the
provider, with ``local.chat.max_sequences`` = 1 (one request at a time, as
before batching) and with ``max_sequences`` = the concurrency (requests share
decode steps), each mode in a process of its own (two models in one process
slow each other down), alternating for ``--rounds`` rounds. Reports
completion tokens per second of wall time, the ratio and each mode's peak
resident memory (the child's ``ru_maxrss``), and checks that
every request's text is the same either way (greedy decoding does not depend
on batching).

Run:  .venv/bin/python bench/local_batching.py [--concurrency 8] [--tokens 96] [--rounds 3]
(about 3 minutes)
Never part of ``make test``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import statistics
import subprocess
import sys
import time

from gatehouse.core.config import LocalChatConfig
from gatehouse.core.types import ChatCompletionRequest
from gatehouse.providers.local.chat import LlamaChatProvider

TOPICS = [
    "the ocean",
    "a dragon",
    "the history of bread",
    "mountains in winter",
    "a city at night",
    "the first computers",
    "a garden in spring",
    "the moon",
]


def requests(concurrency: int, tokens: int) -> list[ChatCompletionRequest]:
    return [
        ChatCompletionRequest.model_validate(
            {
                "model": "local/smollm2",
                "temperature": 0,
                "max_tokens": tokens,
                "messages": [
                    {"role": "user", "content": f"Write a long essay about {TOPICS[i % 8]}."}
                ],
            }
        )
        for i in range(concurrency)
    ]


async def run(
    provider: LlamaChatProvider, batch: list[ChatCompletionRequest]
) -> tuple[float, int, list[str]]:
    started = time.perf_counter()
    answers = await asyncio.gather(*(provider.complete(r) for r in batch))
    elapsed = time.perf_counter() - started
    tokens = sum(a.usage.completion_tokens for a in answers if a.usage is not None)
    return elapsed, tokens, [a.choices[0].message.content or "" for a in answers]


async def measure(sequences: int, concurrency: int, tokens: int) -> None:
    """One mode, one round, in this process: prints tokens/s and the texts as JSON."""
    batch = requests(concurrency, tokens)
    provider = LlamaChatProvider(LocalChatConfig(max_sequences=sequences))
    await provider.complete(batch[0])  # load the model, start the generation thread
    elapsed, count, answers = await run(provider, batch)
    await provider.aclose()
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(json.dumps({"rate": count / elapsed, "texts": answers, "peak_mib": peak_mib}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=96)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # a child: max_sequences
    args = parser.parse_args()
    if args.one is not None:
        asyncio.run(measure(args.one, args.concurrency, args.tokens))
        return
    modes = {"one at a time": 1, "batched": max(args.concurrency, 1)}
    rates: dict[str, list[float]] = {name: [] for name in modes}
    peaks: dict[str, list[float]] = {name: [] for name in modes}
    texts: dict[str, list[str]] = {}
    for _ in range(args.rounds):
        for name, sequences in modes.items():
            child = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--one",
                    str(sequences),
                    "--concurrency",
                    str(args.concurrency),
                    "--tokens",
                    str(args.tokens),
                ],
                check=True,
                capture_output=True,
                text=True,
            )
            result = json.loads(child.stdout.strip().splitlines()[-1])
            rates[name].append(result["rate"])
            peaks[name].append(result["peak_mib"])
            texts[name] = result["texts"]
    base = statistics.median(rates["one at a time"])
    print(f"{args.concurrency} concurrent requests, {args.tokens} tokens each, greedy")
    print("| mode | completion tokens/s (median) | rounds | speed-up | peak RSS |")
    print("| --- | --- | --- | --- | --- |")
    for name, values in rates.items():
        rounds = ", ".join(f"{v:.0f}" for v in values)
        median = statistics.median(values)
        peak = max(peaks[name])
        print(f"| {name} | {median:.0f} | {rounds} | {median / base:.2f}x | {peak:.0f} MiB |")
    same = texts["one at a time"] == texts["batched"]
    print(f"\nsame text for every request either way: {same}")


if __name__ == "__main__":
    main()
