"""How well and how fast do the guard's detectors find PII and secrets?

Runs :func:`gatehouse.guard.detect` over the labelled corpus written for the
project (``tests/fixtures/guard/positives.jsonl``: texts with the expected
entity spans; ``negatives.jsonl``: hard negatives, texts where nothing may
fire) and prints, per entity type, precision and recall. A finding counts as
right only when its type, start and end all equal a labelled entity's
(span-exact, end exclusive); a finding that overlaps a label but with other
bounds counts as one false positive and one miss.

Then the share of negative texts with any finding, and the time to scan a
2 KB prompt (p50 and p99 over many runs): one of plain prose, one of prose
with entities sprinkled in; and the time the whole guard stage adds to a
chat call with that prompt when every type is masked (scan, mask, restore the
placeholders in a 750-character answer), the upstream answering at once.

Last, the prompt-injection signals on ``tests/fixtures/guard/injection.jsonl``,
text by text (a text counts for a kind when any signal of that kind fires):
precision and recall per kind, and the share of benign texts with any
signal, for the texts the detectors were tuned on and, apart, for the
held-out texts written afterwards and never tuned on.

Run: .venv/bin/python bench/guard_detection.py   (a few seconds)
The corpus is small and was written alongside the detectors: read the figures
as a regression check on known formats, not as the rate on real traffic.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import time
from collections import Counter
from pathlib import Path

from gatehouse.core.config import GuardConfig
from gatehouse.core.types import (
    AssistantMessage,
    ChatCompletion,
    ChatCompletionRequest,
    ChatMessage,
    Choice,
    Usage,
)
from gatehouse.gateway.guard_stage import guard_stages
from gatehouse.gateway.pipeline import CallContext, Result
from gatehouse.guard import ENTITY_TYPES, detect
from gatehouse.guard.injection import SIGNAL_KINDS, injection_signals

CORPUS = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "guard"
PROSE = (
    "The quarterly review covered onboarding, the migration of the billing service and the "
    "plan for the next release. Latency improved after the cache change, and the team agreed "
    "to ship on Friday once the load test passes. Please summarise the discussion below in "
    "three bullet points and list any open questions for the product owner. "
)


def load(name: str) -> list[dict[str, object]]:
    with (CORPUS / name).open(encoding="utf-8") as file:
        return [json.loads(line) for line in file if line.strip()]


def score(records: list[dict[str, object]]) -> tuple[Counter[str], Counter[str], Counter[str]]:
    hits: Counter[str] = Counter()
    false: Counter[str] = Counter()
    missed: Counter[str] = Counter()
    for record in records:
        text = str(record["text"])
        labels = record["entities"]
        assert isinstance(labels, list)
        expected = {(e["type"], e["start"], e["end"]) for e in labels}
        found = {(e.type, e.start, e.end) for e in detect(text)}
        for kind, _, _ in found & expected:
            hits[kind] += 1
        for kind, _, _ in found - expected:
            false[kind] += 1
        for kind, _, _ in expected - found:
            missed[kind] += 1
    return hits, false, missed


def prompt_2kb(records: list[dict[str, object]], *, with_entities: bool) -> str:
    parts: list[str] = []
    index = 0
    while sum(len(p) + 1 for p in parts) < 2048:
        parts.append(PROSE)
        if with_entities:
            parts.append(str(records[index % len(records)]["text"]))
            index += 7
    return " ".join(parts)[:2048]


def timings(text: str, runs: int) -> tuple[float, float]:
    for _ in range(50):
        detect(text)
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        detect(text)
        samples.append(time.perf_counter() - started)
    samples.sort()
    return statistics.median(samples) * 1000, samples[int(len(samples) * 0.99)] * 1000


def stage_timings(text: str, runs: int) -> tuple[float, float]:
    config = GuardConfig.model_validate(
        {"enabled": True, "entities": {kind: "mask" for kind in ENTITY_TYPES}}
    )
    [stage] = guard_stages(config)
    message = AssistantMessage(content="Noted, [EMAIL_1] and [PHONE_1]. " * 25)
    answer = ChatCompletion(
        id="c",
        created=0,
        model="m",
        usage=Usage(prompt_tokens=1, total_tokens=1),
        choices=[Choice(message=message, finish_reason="stop")],
    )
    request = ChatCompletionRequest(model="m", messages=[ChatMessage(role="user", content=text)])

    async def upstream(ctx: CallContext) -> Result:
        return answer

    async def measure() -> list[float]:
        samples = []
        for index in range(runs + 50):
            ctx = CallContext(request_id="r", endpoint="chat", request=request)
            started = time.perf_counter()
            await stage(ctx, upstream)
            if index >= 50:
                samples.append(time.perf_counter() - started)
        return sorted(samples)

    samples = asyncio.run(measure())
    return statistics.median(samples) * 1000, samples[int(len(samples) * 0.99)] * 1000


def injection_table(records: list[dict[str, object]]) -> list[str]:
    lines = [f"{'set':8} {'kind':22} {'labelled':>8} {'found':>6} {'precision':>9} {'recall':>7}"]
    for split in ("tuning", "heldout"):
        hits: Counter[str] = Counter()
        found: Counter[str] = Counter()
        labelled: Counter[str] = Counter()
        benign = fired = 0
        for record in records:
            if record["set"] != split:
                continue
            kinds = record["kinds"]
            assert isinstance(kinds, list)
            expected = set(kinds)
            got = {signal.kind for signal in injection_signals(str(record["text"]))}
            labelled.update(expected)
            found.update(got)
            hits.update(expected & got)
            if not expected:
                benign += 1
                fired += bool(got)
        for kind in SIGNAL_KINDS:
            precision = hits[kind] / found[kind] if found[kind] else 1.0
            recall = hits[kind] / labelled[kind] if labelled[kind] else 1.0
            lines.append(
                f"{split:8} {kind:22} {labelled[kind]:>8} {found[kind]:>6} "
                f"{precision:>9.3f} {recall:>7.3f}"
            )
        lines.append(f"{split:8} benign texts with any signal: {fired}/{benign}")
    return lines


def cpu() -> str:
    try:
        line = subprocess.run(
            ["grep", "-m1", "model name", "/proc/cpuinfo"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout
    except OSError:
        return "unknown"
    return line.split(":", 1)[-1].strip() or "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5000, help="timed scans per prompt")
    args = parser.parse_args()

    positives, negatives = load("positives.jsonl"), load("negatives.jsonl")
    hits, false, missed = score(positives + negatives)
    print(f"CPU: {cpu()}")
    print(f"corpus: {len(positives)} texts with entities, {len(negatives)} hard negatives")
    print("matching: span-exact (type, start, end)\n")
    print(f"{'type':12} {'labelled':>8} {'found':>6} {'right':>6} {'precision':>9} {'recall':>7}")
    for kind in ENTITY_TYPES:
        right, labelled = hits[kind], hits[kind] + missed[kind]
        found = right + false[kind]
        precision = right / found if found else 1.0
        recall = right / labelled if labelled else 1.0
        print(f"{kind:12} {labelled:>8} {found:>6} {right:>6} {precision:>9.3f} {recall:>7.3f}")
    fired = sum(1 for record in negatives if detect(str(record["text"])))
    share = fired / len(negatives)
    print(f"\nnegative texts with any finding: {fired}/{len(negatives)} = {share:.1%}")

    print(f"\n{'2 KB prompt':30} {'p50 ms':>7} {'p99 ms':>7}")
    for label, with_entities in (("prose", False), ("prose with entities", True)):
        text = prompt_2kb(positives, with_entities=with_entities)
        p50, p99 = timings(text, args.runs)
        print(f"{label + f' ({len(detect(text))} found)':30} {p50:>7.3f} {p99:>7.3f}")
    p50, p99 = stage_timings(prompt_2kb(positives, with_entities=True), args.runs)
    print(f"{'guard stage, all masked':30} {p50:>7.3f} {p99:>7.3f}")

    print("\nprompt-injection signals (text by text)")
    print("\n".join(injection_table(load("injection.jsonl"))))


if __name__ == "__main__":
    main()
