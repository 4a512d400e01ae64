"""What a detector finds: an entity type, a span in the text and a score."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

EMAIL: Final = "EMAIL"
PHONE: Final = "PHONE"
CREDIT_CARD: Final = "CREDIT_CARD"
IBAN: Final = "IBAN"
US_SSN: Final = "US_SSN"
IP_ADDRESS: Final = "IP_ADDRESS"
SECRET: Final = "SECRET"

ENTITY_TYPES: Final = (EMAIL, PHONE, CREDIT_CARD, IBAN, US_SSN, IP_ADDRESS, SECRET)

# Free-text entities: found only by a configured recogniser (guard.presidio).
PERSON: Final = "PERSON"
LOCATION: Final = "LOCATION"
RECOGNISED_TYPES: Final = (PERSON, LOCATION)


@dataclass(frozen=True, slots=True)
class Entity:
    """One finding. ``start`` and ``end`` are character offsets into the scanned
    text, ``end`` exclusive; ``score`` is the detector's confidence, 0 to 1."""

    type: str
    start: int
    end: int
    score: float

    def to_dict(self) -> dict[str, str | int | float]:
        return {"type": self.type, "start": self.start, "end": self.end, "score": self.score}
