"""Labelled retrieval sets that the project can ship, written in BEIR layout for the benchmarks.

The public sets in ``../shared/data/retrieval`` are two (msmarco, arcd): too
few to tell a fusion rule that generalises from one fitted to them. These sets
add material that comes with the project or with Python itself:

- ``entities``: 189 short encyclopedia-style abstracts written for the project
  (cities, rivers, people, animals, elements, works; several share a name:
  Paris, Mercury, Amazon, Java, Jaguar) and 62 entity queries, some naming an
  entity and some describing it, with graded labels (2 the entity, 1 related).
  Texts under ``bench/data/entities``.
- ``entity-lists``: the same abstracts with 54 list queries ("big cats",
  "European capital cities", "radioactive elements"): several relevant
  entities each, named by category rather than by the words of their
  abstracts, as in DBpedia-entity's list questions.
- ``pydoc``: the 79 topics of the Python language reference shipped in the
  standard library (``pydoc_data.topics``), 50 questions written for the
  project. Long documents: they are chunked, as users' documents are.
- ``stdlib``: the module docstrings of the standard library's pure-Python
  modules and their direct submodules (codec tables left out), 52 task-style
  queries written for the project.
- ``wordnet-names``, ``wordnet-lists``, ``wordnet-types``: encyclopedia-style
  entity retrieval over WordNet 3.0's 7,730 named entities (its *instance*
  nouns: people, places, works, events; the Debian package ``wordnet-base``,
  ``apt-get install wordnet-base``). A document is one entity: its names as
  the title, its gloss as the abstract. Nobody wrote these queries or picked
  them by looking at results: they and their labels follow from WordNet's
  own relations, 60 drawn per set with a fixed seed:

  - names: a name that several entities share, with one entity's type
    ("Wright inventor", "Phoenix constellation"): relevant, the entities of
    that name and type (DBpedia-entity's named-entity queries);
  - lists: a type and a place ("rivers in Kansas"): relevant, the entities of
    that type that are part of that place, directly or through a part of it
    (DBpedia-entity's list queries);
  - types: the definition of a type, without its name ("an artist skilled at
    drawing"): relevant, the entities of that type or of a narrower one (the
    descriptive queries on which fusion lost to dense in issue 12).

The last two are read from the running interpreter, so their documents follow
its version (the set's directory name carries it). Build is cheap and runs
every time; the embedding cache makes re-runs fast.

    .venv/bin/python bench/retrieval_sets.py [--out ~/.cache/gatehouse-bench/sets]
"""

from __future__ import annotations

import argparse
import ast
import os
import random
import re
import sys
import sysconfig
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import orjson

HERE = Path(__file__).resolve().parent / "data"
CACHE = Path.home() / ".cache" / "gatehouse-bench" / "sets"
PY = f"py{sys.version_info.major}{sys.version_info.minor}"

Doc = tuple[str, str, str]  # id, title, text
Labels = dict[str, dict[str, int]]


def _queries(path: Path) -> tuple[list[tuple[str, str]], Labels]:
    """``id<TAB>text<TAB>doc:grade doc:grade`` lines."""
    queries, labels = [], {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        qid, text, judged = line.split("\t")
        queries.append((qid, text))
        labels[qid] = {d: int(g) for d, g in (pair.split(":") for pair in judged.split())}
    return queries, labels


def entities() -> list[Doc]:
    rows = (HERE / "entities" / "corpus.tsv").read_text(encoding="utf-8").splitlines()
    return [(i, t, x) for i, t, x in (row.split("\t") for row in rows if row.strip())]


def pydoc() -> list[Doc]:
    from pydoc_data.topics import topics

    return [(key, text.strip().splitlines()[0], text) for key, text in sorted(topics.items())]


def stdlib() -> list[Doc]:
    lib = Path(sysconfig.get_paths()["stdlib"])
    skip = {"antigravity", "this", "idlelib", "turtledemo", "lib2to3", "test", "encodings"}
    skip |= {"distutils", "ensurepip", "pydoc_data"}
    docs: list[Doc] = []

    def add(name: str, path: Path) -> None:
        doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")))
        if doc and len(doc.split()) >= 5:
            docs.append((name, name, doc))

    for name in sorted(sys.stdlib_module_names):
        if name.startswith("_") or name in skip:
            continue
        package = lib / name
        if (package / "__init__.py").is_file():
            add(name, package / "__init__.py")
            for sub in sorted(package.glob("*.py")):
                if not sub.stem.startswith("_"):
                    add(f"{name}.{sub.stem}", sub)
            for sub in sorted(package.glob("*/__init__.py")):
                if not sub.parent.name.startswith("_") and sub.parent.name != "test":
                    add(f"{name}.{sub.parent.name}", sub)
        elif package.with_suffix(".py").is_file():
            add(name, package.with_suffix(".py"))
    return docs


WORDNET = Path(os.environ.get("GATEHOUSE_WORDNET", "/usr/share/wordnet"))
WORDNET_QUERIES = 60


@dataclass(frozen=True, slots=True)
class Synset:
    names: list[str]
    pointers: list[tuple[str, str]]  # (symbol, noun synset offset)
    gloss: str

    def targets(self, symbol: str) -> list[str]:
        return [offset for sym, offset in self.pointers if sym == symbol]


@cache
def _nouns() -> dict[str, Synset]:
    """WordNet's noun synsets by offset, from the ``data.noun`` file of the WordNet 3.0 database."""
    path = WORDNET / "data.noun"
    if not path.is_file():
        raise FileNotFoundError(f"{path} (apt-get install wordnet-base, or set GATEHOUSE_WORDNET)")
    synsets = {}
    for line in path.read_text(encoding="latin-1").splitlines():
        if line.startswith("  "):  # the licence header
            continue
        head, _, gloss = line.partition(" | ")
        fields = head.split()
        count = int(fields[3], 16)
        names = [fields[4 + 2 * i].replace("_", " ") for i in range(count)]
        at = 4 + 2 * count
        pointers = []
        for i in range(int(fields[at])):
            symbol, offset, pos = fields[at + 1 + 4 * i : at + 4 + 4 * i]
            if pos == "n":
                pointers.append((symbol, offset))
        synsets[fields[0]] = Synset(names, pointers, gloss.strip())
    return synsets


def _entities() -> dict[str, Synset]:
    """The named entities: synsets that are an instance of a type (``@i``)."""
    return {o: s for o, s in _nouns().items() if s.targets("@i")}


def _closure(start: Iterable[str], step: Callable[[str], list[str]]) -> set[str]:
    seen: set[str] = set()
    stack = list(start)
    while stack:
        node = stack.pop()
        if node not in seen:
            seen.add(node)
            stack.extend(step(node))
    return seen


def wordnet() -> list[Doc]:
    return [(f"wn{o}", ", ".join(s.names), s.gloss) for o, s in sorted(_entities().items())]


def _plural(name: str) -> str:
    head, _, last = name.rpartition(" ")
    if re.search(r"(s|x|z|ch|sh)$", last):
        last += "es"
    elif re.search(r"[^aeiou]y$", last):
        last = last[:-1] + "ies"
    else:
        last += "s"
    return f"{head} {last}".strip()


def _draw(candidates: dict[str, set[str]]) -> tuple[list[tuple[str, str]], Labels]:
    """``WORDNET_QUERIES`` query texts drawn with a fixed seed, every relevant entity graded 1."""
    texts = sorted(candidates)
    drawn = sorted(random.Random(12).sample(texts, min(WORDNET_QUERIES, len(texts))))
    queries = [(f"q{i}", text) for i, text in enumerate(drawn)]
    labels = {f"q{i}": {f"wn{o}": 1 for o in sorted(candidates[t])} for i, t in enumerate(drawn)}
    return queries, labels


def wordnet_names() -> tuple[list[tuple[str, str]], Labels]:
    """A name several entities share plus one entity's type -> the entities of both."""
    nouns, entities = _nouns(), _entities()
    by_name: dict[str, set[str]] = defaultdict(set)
    for offset, synset in entities.items():
        for name in synset.names:
            by_name[name].add(offset)
    found: dict[tuple[str, str], set[str]] = defaultdict(set)
    for name, offsets in by_name.items():
        for offset in offsets if len(offsets) >= 2 else ():
            for kind in entities[offset].targets("@i"):
                found[name, nouns[kind].names[0]].add(offset)
    # Only where the type tells the entities of that name apart.
    return _draw(
        {
            f"{name} {kind}": offsets
            for (name, kind), offsets in found.items()
            if len(offsets) < len(by_name[name])
        }
    )


def wordnet_lists() -> tuple[list[tuple[str, str]], Labels]:
    """A type and a place -> the entities of that type that are part of that place (3 to 30)."""
    nouns, entities = _nouns(), _entities()
    found: dict[tuple[str, str], set[str]] = defaultdict(set)
    for offset, synset in entities.items():
        places = _closure(synset.targets("#p"), lambda o: nouns[o].targets("#p"))
        for kind in synset.targets("@i"):
            for place in places:
                found[kind, place].add(offset)
    return _draw(
        {
            f"{_plural(nouns[kind].names[0])} in {nouns[place].names[0]}": offsets
            for (kind, place), offsets in found.items()
            if 3 <= len(offsets) <= 30
        }
    )


def wordnet_types() -> tuple[list[tuple[str, str]], Labels]:
    """A type's definition, not its name -> its entities and those of narrower types."""
    nouns, entities = _nouns(), _entities()
    found: dict[str, set[str]] = defaultdict(set)
    for offset, synset in entities.items():
        for kind in _closure(synset.targets("@i"), lambda o: nouns[o].targets("@")):
            found[kind].add(offset)
    return _draw(
        {
            re.sub(r"^\([^)]*\) ", "", nouns[kind].gloss.split(";")[0].strip()): offsets
            for kind, offsets in found.items()
            if 5 <= len(offsets) <= 40
        }
    )


Queries = Callable[[], tuple[list[tuple[str, str]], Labels]]

SETS: dict[str, tuple[Callable[[], list[Doc]], str | Queries, bool]] = {
    # name: (corpus, queries file or builder, depends on the interpreter)
    "entities": (entities, "entities/queries.tsv", False),
    "entity-lists": (entities, "entities/queries-lists.tsv", False),
    "pydoc": (pydoc, "pydoc/queries.tsv", True),
    "stdlib": (stdlib, "stdlib/queries.tsv", True),
    "wordnet-names": (wordnet, wordnet_names, False),
    "wordnet-lists": (wordnet, wordnet_lists, False),
    "wordnet-types": (wordnet, wordnet_types, False),
}


def write(root: Path, docs: Iterable[Doc], queries: list[tuple[str, str]], labels: Labels) -> None:
    docs = list(docs)
    known = {d for d, _, _ in docs}
    missing = {d for judged in labels.values() for d in judged} - known
    if missing:
        raise ValueError(f"{root.name}: labels name unknown documents {sorted(missing)}")
    (root / "qrels").mkdir(parents=True, exist_ok=True)
    (root / "corpus.jsonl").write_bytes(
        b"\n".join(orjson.dumps({"_id": i, "title": t, "text": x}) for i, t, x in docs) + b"\n"
    )
    (root / "queries.jsonl").write_bytes(
        b"\n".join(orjson.dumps({"_id": q, "text": t}) for q, t in queries) + b"\n"
    )
    lines = ["query-id\tcorpus-id\tscore"]
    lines += [f"{q}\t{d}\t{g}" for q, judged in labels.items() for d, g in judged.items()]
    (root / "qrels" / "test.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")


def build(name: str, out: Path = CACHE) -> Path:
    """Write set ``name`` in BEIR layout under ``out`` and return its directory."""
    corpus, source, versioned = SETS[name]
    root = out / (f"{name}-{PY}" if versioned else name)
    queries, labels = _queries(HERE / source) if isinstance(source, str) else source()
    write(root, corpus(), queries, labels)
    return root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=CACHE)
    args = parser.parse_args()
    for name in SETS:
        root = build(name, args.out)
        docs = len((root / "corpus.jsonl").read_bytes().splitlines())
        print(f"{name}: {docs} documents -> {root}")


if __name__ == "__main__":
    main()
