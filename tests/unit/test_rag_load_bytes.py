"""Loading an uploaded file's bytes by its name: the type from the suffix, the
title from the first line, and bad uploads refused with the file named."""

from __future__ import annotations

from pathlib import Path, PurePath

import pytest

from gatehouse.core.errors import UnsupportedMediaTypeError, ValidationFailedError
from gatehouse.rag.loaders import load_bytes, load_path


def test_text_and_html_uploads_load_by_their_names() -> None:
    [text] = load_bytes(b"# Tides\n\nThe moon pulls the sea.", PurePath("tides.md"))
    assert (text.title, text.source) == ("Tides", "tides.md")
    assert "moon pulls" in text.text
    [html] = load_bytes(b"<h1>Orbit</h1><p>A year is one orbit.</p>", PurePath("orbit.html"))
    assert html.text.startswith("# Orbit")
    assert "A year is one orbit." in html.text


def test_a_file_on_disk_loads_as_its_bytes_do(tmp_path: Path) -> None:
    path = tmp_path / "note.txt"
    path.write_bytes(b"Ferns reproduce with spores.")
    [from_disk] = load_path(path)
    [from_bytes] = load_bytes(path.read_bytes(), path)
    assert from_disk == from_bytes


def test_bad_uploads_are_refused_naming_the_file() -> None:
    with pytest.raises(UnsupportedMediaTypeError, match=r"virus\.exe"):
        list(load_bytes(b"MZ", PurePath("virus.exe")))
    with pytest.raises(ValidationFailedError, match=r"empty\.txt: the file is empty"):
        list(load_bytes(b"  \n", PurePath("empty.txt")))
    with pytest.raises(ValidationFailedError, match="binary"):
        list(load_bytes(b"a\x00b", PurePath("blob.txt")))
