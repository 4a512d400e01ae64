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

The last two are read from the running interpreter, so their documents follow
its version (the set's directory name carries it). Build is cheap and runs
every time; the embedding cache makes re-runs fast.

    .venv/bin/python bench/retrieval_sets.py [--out ~/.cache/gatehouse-bench/sets]
"""

from __future__ import annotations

import argparse
import ast
import sys
import sysconfig
from collections.abc import Callable, Iterable
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


SETS: dict[str, tuple[Callable[[], list[Doc]], str, bool]] = {
    # name: (corpus, queries file, depends on the interpreter)
    "entities": (entities, "entities/queries.tsv", False),
    "entity-lists": (entities, "entities/queries-lists.tsv", False),
    "pydoc": (pydoc, "pydoc/queries.tsv", True),
    "stdlib": (stdlib, "stdlib/queries.tsv", True),
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
    corpus, queries_file, versioned = SETS[name]
    root = out / (f"{name}-{PY}" if versioned else name)
    queries, labels = _queries(HERE / queries_file)
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
