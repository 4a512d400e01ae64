"""How often does the semantic cache answer a question it should not? Measured, not guessed.

Builds question pairs from the evaluation queries in ``../shared/data``
(MS MARCO and Paul Graham sets, 100 English questions):

- paraphrases (a hit is right): the question reworded by fixed rules: a
  polite wrapper ("can you tell me ..."), case and punctuation, "X of Y" ->
  "Y X", and synonyms ("cost" -> "price", "definition" -> "meaning");
- non-paraphrases (a hit is a false hit, a wrong answer served): the nearest
  *other* question of the set by embedding, the question with its intent
  word changed ("causes of X" -> "symptoms of X"), and two different
  questions in the same wrapper.

Each pair is embedded with the model the cache uses (``local/minilm``), the
last user turn only, as the cache does, and the table gives, per cosine
threshold, the share of paraphrases that hit and the share of non-paraphrases
that falsely hit. The peer, in the same run on the same pairs, is the usual
design (GPTCache, LiteLLM's semantic cache): embed the whole prompt, system
prompt included. With a shared system prompt in front, as in any deployed
app, its similarities crowd together and false hits climb; gatehouse keeps
the system prompt and earlier turns in an exact partition key instead.

Run: .venv/bin/python bench/semantic_cache.py   (about a minute on 2 cores)
The rules are simple and the set is small: read the figures as a floor on
the false-hit rate of real traffic, not as its value.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
from pathlib import Path

import numpy as np

from gatehouse.core.config import LocalEmbeddingConfig
from gatehouse.core.types import EmbeddingRequest
from gatehouse.providers.local import MiniLMEmbeddingProvider

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "retrieval"
SYSTEM = (
    "You are the helpful assistant of Acme Corp. Answer the customer's question "
    "clearly and briefly, in a friendly tone, using plain English and no jargon. "
    "If you do not know the answer, say so instead of guessing."
)
WRAPPERS = ["can you tell me {}", "please explain {}", "i would like to know {}", "{}? thanks"]
SYNONYMS = {
    "cost": "price",
    "definition": "meaning",
    "define": "what is the meaning of",
    "causes": "reasons for",
    "how long": "how much time",
    "what is": "what's",
    "best way": "most effective way",
    "get rich": "become wealthy",
}
INTENTS = [
    ["causes", "symptoms", "treatment", "prevention"],
    ["cost", "size", "weight", "age"],
    ["definition", "example", "history", "opposite"],
    ["what", "who", "where", "when", "why"],
    ["best", "worst"],
    ["good", "bad"],
]


def load_questions() -> list[str]:
    questions = []
    for name in ("msmarco", "pg"):
        for line in (DATA / name / "queries.jsonl").read_text().splitlines():
            questions.append(json.loads(line)["text"].strip())
    return questions


def paraphrases(q: str, rng: random.Random) -> list[str]:
    bare = q.rstrip("?").strip()
    out = [rng.choice(WRAPPERS).format(bare[0].lower() + bare[1:]), bare.capitalize() + "?"]
    if bare.lower().count(" of ") == 1 and len(bare.split()) <= 6:
        left, right = re.split(r" of ", bare, flags=re.I)
        out.append(f"{right} {left}")
    for word, synonym in SYNONYMS.items():
        if re.search(rf"\b{word}\b", bare, re.I):
            out.append(re.sub(rf"\b{word}\b", synonym, bare, count=1, flags=re.I))
            break
    return out


def intent_swaps(q: str) -> list[str]:
    for group in INTENTS:
        for word in group:
            if re.search(rf"\b{word}\b", q, re.I):
                other = next(w for w in group if w != word)
                return [re.sub(rf"\b{word}\b", other, q, count=1, flags=re.I)]
    return []


async def embed_all(provider: MiniLMEmbeddingProvider, texts: list[str]) -> dict[str, np.ndarray]:
    unique = sorted(set(texts))
    vectors: dict[str, np.ndarray] = {}
    for start in range(0, len(unique), 64):
        batch = unique[start : start + 64]
        response = await provider.embed(EmbeddingRequest(model="local/minilm", input=batch))
        for text, item in zip(batch, response.data, strict=True):
            array = np.asarray(item.embedding, dtype=np.float32)
            vectors[text] = array / np.linalg.norm(array)
    return vectors


def main() -> None:
    parser = argparse.ArgumentParser(description="semantic cache false-hit rate vs threshold")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    questions = load_questions()
    provider = MiniLMEmbeddingProvider(LocalEmbeddingConfig())

    base = asyncio.run(embed_all(provider, questions))
    matrix = np.stack([base[q] for q in questions])
    sims = matrix @ matrix.T
    np.fill_diagonal(sims, -1)

    positive: list[tuple[str, str]] = []
    negative: dict[str, list[tuple[str, str]]] = {"nearest other": [], "intent": [], "wrapper": []}
    for i, q in enumerate(questions):
        positive.extend((q, p) for p in paraphrases(q, rng))
        negative["nearest other"].append((q, questions[int(np.argmax(sims[i]))]))
        negative["intent"].extend((q, n) for n in intent_swaps(q))
        other = questions[(i + 1 + rng.randrange(len(questions) - 1)) % len(questions)]
        wrapper = rng.choice(WRAPPERS)
        negative["wrapper"].append(
            (wrapper.format(q.rstrip("?")), wrapper.format(other.rstrip("?")))
        )
    pairs = positive + [pair for group in negative.values() for pair in group]
    texts = [t for pair in pairs for t in pair]
    vectors = asyncio.run(embed_all(provider, texts + [f"{SYSTEM}\n\n{t}" for t in texts]))

    def cosines(group: list[tuple[str, str]], whole_prompt: bool) -> np.ndarray:
        def key(text: str) -> str:
            return f"{SYSTEM}\n\n{text}" if whole_prompt else text

        return np.array([float(vectors[key(a)] @ vectors[key(b)]) for a, b in group])

    all_negative = [pair for group in negative.values() for pair in group]
    print(
        f"\n{len(questions)} questions; {len(positive)} paraphrase pairs; "
        + "; ".join(f"{len(g)} '{name}' non-paraphrase pairs" for name, g in negative.items())
    )
    for whole_prompt, title in (
        (False, "gatehouse: last user turn embedded, system prompt in the exact key"),
        (True, "peer design: whole prompt embedded (shared system prompt + question)"),
    ):
        pos = cosines(positive, whole_prompt)
        negs = {name: cosines(group, whole_prompt) for name, group in negative.items()}
        neg_all = cosines(all_negative, whole_prompt)
        print(f"\n{title}\n")
        head = "| threshold | paraphrase hit rate | false-hit rate (all) | "
        head += " | ".join(f"false hits: {name}" for name in negs) + " |"
        print(head)
        print("|" + " --- |" * (head.count("|") - 1))
        for threshold in (0.80, 0.85, 0.90, 0.92, 0.94, 0.95, 0.96, 0.97, 0.98, 0.99):
            cells = [
                f"{threshold:.2f}",
                f"{(pos >= threshold).mean():.1%}",
                f"{(neg_all >= threshold).mean():.1%}",
                *(f"{(values >= threshold).mean():.1%}" for values in negs.values()),
            ]
            print("| " + " | ".join(cells) + " |")
        safe = next((t / 100 for t in range(70, 100) if (neg_all >= t / 100).mean() == 0), None)
        if safe is not None:
            print(
                f"\nlowest threshold with no false hit on this set: {safe:.2f} "
                f"(paraphrase hit rate there {(pos >= safe).mean():.1%})"
            )


if __name__ == "__main__":
    main()
