"""Timing-safe comparisons of secrets (OWASP API2).

A secret compared with ``==`` answers sooner the earlier it differs, which
lets a caller guess it byte by byte. Every comparison in ``src`` whose
operands name a secret (a key, token, digest, signature, fingerprint, CSRF
token, nonce, state, password) must go through ``hmac.compare_digest``; the
test reads the source, so it holds for code added later. Timing itself is
never measured (it would decide nothing on a shared machine).

The few ``==`` comparisons of hashes that are not secrets (a document's
content hash, the published hash of a downloaded file) are listed with why.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "gatehouse"
SECRET = re.compile(
    r"(secret|digest|signature|fingerprint|csrf|nonce|password|passwd|master|api_key"
    r"|credential|session_id|\bsid\b|\bstate\b|\bmac\b|\btoken\b)",
    re.IGNORECASE,
)
# Not secrets, reviewed: integrity checks of public data.
NOT_SECRETS = {
    # A RAG document's content hash: unchanged documents are not re-embedded.
    ("rag/ingestion.py", "existing.content_hash == digest"),
    # Published SHA-256 of model files and tokenizer data, checked after download.
    ("providers/local/e5.py", "digest.hexdigest() != expected"),
    ("catalog/tokens.py", "hashlib.sha256(rendered.encode()).hexdigest() != sha256"),
}
# Names that look like secrets but are not: counts, kinds, SQL columns.
HARMLESS = re.compile(
    r"(_tokens\b|tokens\b|token_count|\.kind\b|count\(|\bkty\b|\balg\b|scheme|\.type\b"
    r"|len\(|\.c\.)",
)


def _comparisons() -> list[tuple[str, str]]:
    found = []
    for path in sorted(SRC.rglob("*.py")):
        source = path.read_text()
        for node in ast.walk(ast.parse(source, str(path))):
            if not isinstance(node, ast.Compare):
                continue
            if not any(isinstance(op, ast.Eq | ast.NotEq) for op in node.ops):
                continue
            text = ast.get_source_segment(source, node) or ""
            operands = [node.left, *node.comparators]
            if any(isinstance(o, ast.Constant) for o in operands):
                continue  # against a literal (None, a name or kind): no secret on either side
            if SECRET.search(text) and not HARMLESS.search(text):
                found.append((path.relative_to(SRC).as_posix(), text))
    return found


def test_no_secret_is_compared_with_equals() -> None:
    compared = set(_comparisons())
    assert compared - NOT_SECRETS == set(), "compare secrets with hmac.compare_digest"
    assert compared >= NOT_SECRETS  # the reviewed list stays true


def test_the_checks_of_credentials_use_compare_digest() -> None:
    """The places that check a credential: master key, virtual key digest,
    session cookie signature and key fingerprint, CSRF, OIDC state, nonce and
    login cookie signature."""
    uses = {
        path.relative_to(SRC).as_posix(): path.read_text().count("hmac.compare_digest(")
        for path in SRC.rglob("*.py")
    }
    assert uses["gateway/auth.py"] >= 1  # the master key
    assert uses["gateway/keys.py"] >= 1  # a virtual key's digest
    assert uses["ui/session.py"] >= 5  # signature, master, key fingerprint, CSRF
    assert uses["ui/oidc.py"] >= 3  # login cookie signature, state, nonce
