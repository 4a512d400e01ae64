"""Structured output on the local model: how often is the answer schema-valid?

Asks ``local/smollm2`` for ``--tries`` objects (40 by default: ten prompts for
each of four pydantic models with strings, integers, numbers, booleans,
enums and lists) through :class:`gatehouse.prompts.StructuredOutput`, via
``gatehouse.Client`` on an in-process gatehouse app (the same pipeline as a
server: auth, limits, metering). Reports, per mode:

- first-try valid: the first answer parses and validates against the model
  (what ``response_format`` with the local grammar gives on its own);
- valid within ``--attempts``: after the pattern's parse-validate-repair
  retries, feeding the validation error back;
- the median and worst latency of one structured call.

``--mode auto`` (default) sends ``response_format`` (grammar-constrained on
the local model); ``--mode prompt`` only describes the schema in the prompt
and relies on repair, for comparison. Target: at least 95 % schema-valid.

Run:  .venv/bin/python bench/structured_output.py [--tries 40] [--mode auto|prompt]
(about 1-3 minutes on 2 cores)
Never part of ``make test``.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, Field

from gatehouse.client import Client
from gatehouse.core.config import Settings
from gatehouse.prompts import StructuredOutput, StructuredOutputError, run
from gatehouse.prompts.structured import Mode
from gatehouse.server import create_app


class Person(BaseModel):
    name: str = Field(max_length=30)
    age: int = Field(ge=0, le=130)
    pets: list[str] = Field(max_length=3)


class City(BaseModel):
    name: str = Field(max_length=30)
    country: str = Field(max_length=30)
    is_capital: bool


class Colour(StrEnum):
    red = "red"
    green = "green"
    blue = "blue"
    black = "black"


class Product(BaseModel):
    title: str = Field(max_length=40)
    price: float
    colour: Colour
    in_stock: bool


class Meeting(BaseModel):
    topic: str = Field(max_length=40)
    day: str = Field(max_length=12)
    attendees: list[str] = Field(max_length=4)
    minutes: int = Field(ge=1, le=600)


CASES: list[tuple[type[BaseModel], list[str]]] = [
    (
        Person,
        [
            "Ada is 36 and has two cats, Tom and Kit.",
            "Describe a person called Bob, aged 52, with a dog named Rex.",
            "Maria, 29, owns no pets.",
            "Invent a retired teacher with one parrot.",
            "Li Wei is twelve years old and keeps a goldfish called Bubbles.",
            "Describe a 70-year-old gardener who has three hens.",
            "A student named Omar, 21, with a hamster.",
            "Create a fictional pilot aged 45 with two dogs.",
            "Sam is 8 and has a rabbit named Snow.",
            "Describe yourself as a person.",
        ],
    ),
    (
        City,
        [
            "Paris, the capital of France.",
            "Describe Osaka in Japan.",
            "Give the capital of Italy.",
            "Describe the city of Toronto.",
            "Berlin is the capital of Germany.",
            "Describe a small town in Spain.",
            "Name the capital of Kenya.",
            "Describe Sydney, Australia.",
            "Describe the largest city in Brazil.",
            "Lisbon, Portugal.",
        ],
    ),
    (
        Product,
        [
            "A red coffee mug for 12.50, in stock.",
            "A blue bicycle helmet costing 49.99, sold out.",
            "Describe a green notebook for 3 dollars that is available.",
            "A black laptop bag, 79 euros, in stock.",
            "Invent a product for a kitchen shop.",
            "A pair of red running shoes at 89.90, out of stock.",
            "Describe a blue umbrella priced 15.",
            "A green water bottle, 9.99, available now.",
            "A black desk lamp for 34.50 that is out of stock.",
            "Invent a toy for children.",
        ],
    ),
    (
        Meeting,
        [
            "Budget review on Monday with Ann and Raj for 30 minutes.",
            "Plan a one-hour design meeting on Friday with three people.",
            "Weekly standup, Tuesday, 15 minutes, whole team of Li, Bo and Eve.",
            "A 45-minute hiring sync on Wednesday with Tom.",
            "Describe a meeting about the office move on Thursday.",
            "Quarterly planning, Monday, 2 hours, with Sara and Ken.",
            "A short call on Friday with Ivan about the release.",
            "Retrospective on Tuesday for 60 minutes with Dana, Eli and Flo.",
            "Describe a lunch meeting on Wednesday.",
            "Security training on Thursday, 90 minutes, with Max.",
        ],
    ),
]


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _tries(
    client: Client,
    prompts: list[tuple[type[BaseModel], str]],
    mode: Mode,
    args: argparse.Namespace,
    latencies: list[float],
    failures: list[str],
) -> tuple[int, int]:
    """Runs every try; returns (valid on the first attempt, valid in the end)."""
    client.chat("Hi", model="local/smollm2", max_tokens=1)  # load the model first
    first_ok = final_ok = 0
    for i, (model, prompt) in enumerate(prompts, 1):
        ask = StructuredOutput(
            model,
            model="local/smollm2",
            mode=mode,
            max_attempts=args.attempts,
            max_tokens=args.max_tokens,
        )
        started = time.perf_counter()
        try:
            result = run(ask.flow(prompt), client)
        except StructuredOutputError as exc:
            failures.append(
                f"{model.__name__}: {prompt!r}: {exc.errors[-1][:100]} ({exc.raw[:80]!r})"
            )
        else:
            final_ok += 1
            first_ok += result.attempts == 1
        latencies.append(time.perf_counter() - started)
        print(f"{i}/{len(prompts)} first {first_ok} final {final_ok}", file=sys.stderr, flush=True)
    return first_ok, final_ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tries", type=int, default=40)
    parser.add_argument("--mode", choices=["auto", "prompt"], default="auto")
    parser.add_argument("--attempts", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=160)
    args = parser.parse_args()
    mode: Mode = args.mode

    prompts = [(model, prompt) for model, texts in CASES for prompt in texts]
    prompts = [prompts[i % len(prompts)] for i in range(args.tries)]
    latencies: list[float] = []
    failures: list[str] = []
    with tempfile.TemporaryDirectory() as data:
        # No access log: its lines would go to stdout, between the results.
        settings = Settings(data_dir=Path(data), observability={"access_log": {"enabled": False}})
        with Client(app=create_app(settings)) as client:
            first_ok, final_ok = _tries(client, prompts, mode, args, latencies, failures)

    n = len(prompts)
    print(f"structured output on local/smollm2, mode={mode}, {n} tries, CPU: {cpu_name()}")
    print(f"{'first-try schema-valid':28} {first_ok:3}/{n}  {100 * first_ok / n:5.1f} %")
    within = f"valid within {args.attempts} attempts"
    print(f"{within:28} {final_ok:3}/{n}  {100 * final_ok / n:5.1f} %")
    print(
        f"{'latency per object':28} median {statistics.median(latencies):.2f} s, "
        f"max {max(latencies):.2f} s"
    )
    for failure in failures:
        print("  failed:", failure)


if __name__ == "__main__":
    main()
