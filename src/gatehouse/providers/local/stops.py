"""Stop-sequence matching over streamed text, free of I/O.

A streamed piece of text may end with the start of a stop sequence that the
next piece completes, so the matcher holds back the longest suffix that is a
prefix of some stop sequence and releases it only once it cannot match.
"""

from __future__ import annotations

from collections.abc import Sequence


class StopMatcher:
    def __init__(self, stops: Sequence[str]) -> None:
        self._stops = [s for s in stops if s]
        self._pending = ""
        self.stopped = False
        self.matched: str | None = None  # the stop sequence found, once stopped

    def feed(self, text: str) -> str:
        """Add generated text; return what can safely be emitted now.

        After a stop sequence is found, :attr:`stopped` is true and the text up
        to (not including) the stop sequence has been returned.
        """
        if self.stopped:
            return ""
        buffer = self._pending + text
        found = [(at, stop) for stop in self._stops if (at := buffer.find(stop)) >= 0]
        if found:
            cut, self.matched = min(found, key=lambda hit: hit[0])  # the first to begin
            self.stopped = True
            self._pending = ""
            return buffer[:cut]
        hold = self._longest_partial_suffix(buffer)
        self._pending = buffer[len(buffer) - hold :] if hold else ""
        return buffer[: len(buffer) - hold]

    def flush(self) -> str:
        """Release held-back text at the end of generation."""
        out, self._pending = self._pending, ""
        return "" if self.stopped else out

    def _longest_partial_suffix(self, buffer: str) -> int:
        longest = 0
        for stop in self._stops:
            for size in range(min(len(stop) - 1, len(buffer)), longest, -1):
                if stop.startswith(buffer[-size:]):
                    longest = size
                    break
        return longest
