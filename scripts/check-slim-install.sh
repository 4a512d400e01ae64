#!/bin/sh
# The gateway alone: `pip install .` without extras, in a fresh virtual
# environment, must serve a proxied chat call.
#
#  1. installs the project without extras (no torch, llama.cpp, ONNX or RAG
#     packages; pip's cache makes this take seconds after the first run);
#  2. checks that importing the server and the CLI loads none of them;
#  3. starts a stub OpenAI-compatible upstream (stdlib only) and
#     `gatehouse serve` with the default settings plus one model group in
#     front of the stub: the local models are on by default, so this is also
#     the start-up of a server whose 'local' extra is missing;
#  4. makes one chat call through the gateway with curl and checks the answer,
#     and checks that the local models and RAG say which extra they need.
#
# Usage: sh scripts/check-slim-install.sh   (SLIM_VENV=dir to choose the venv)
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
VENV=${SLIM_VENV:-$ROOT/.venv-slim}
PYTHON=${PYTHON:-python3}
WORK=$(mktemp -d)
PIDS=""

cleanup() {
    for pid in $PIDS; do kill "$pid" 2>/dev/null || true; done
    for pid in $PIDS; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

fail() {
    echo "slim install: FAILED: $*" >&2
    for log in "$WORK"/*.log; do
        # pip's warnings about index locations it skips are noise here.
        [ -s "$log" ] && { echo "--- $log" >&2; grep -v '^WARNING: Location' "$log" | tail -n 30 >&2; }
    done
    exit 1
}

start=$(date +%s)
rm -rf "$VENV"
"$PYTHON" -m venv "$VENV"
# A copy, not an editable install: what `pip install gatehouse` would give.
"$VENV/bin/pip" install --disable-pip-version-check -q "$ROOT" 2>"$WORK/pip.log" \
    || fail "pip install ."
installed=$(date +%s)

# Nothing heavy installed, and nothing heavy imported by the gateway's modules.
"$VENV/bin/python" - <<'EOF' || fail "heavy packages installed or imported"
import importlib.util
import sys

import gatehouse.cli.main
import gatehouse.server.app
from gatehouse.core.extras import MODULES

heavy = [name for names in MODULES.values() for name in names]
installed = [name for name in heavy if importlib.util.find_spec(name) is not None]
imported = sorted(name for name in sys.modules if name.split(".")[0] in heavy)
if installed or imported:
    sys.exit(f"installed: {installed}; imported: {imported}")
EOF

free_port() {
    "$VENV/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
UPSTREAM_PORT=$(free_port)
PORT=$(free_port)

# The stub upstream: answers every chat completion with one fixed message.
cat >"$WORK/upstream.py" <<'EOF'
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        body = json.dumps({
            "id": "chatcmpl-stub",
            "object": "chat.completion",
            "created": 0,
            "model": request["model"],
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": "hello from the stub"},
                "finish_reason": "stop",
            }],
            "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7},
        }).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
EOF
"$VENV/bin/python" "$WORK/upstream.py" "$UPSTREAM_PORT" >"$WORK/upstream.log" 2>&1 &
PIDS="$PIDS $!"

cat >"$WORK/config.yaml" <<EOF
models:
  - name: upstream-chat
    deployments:
      - provider: openai_compat
        model: stub-model
        base_url: http://127.0.0.1:$UPSTREAM_PORT/v1
        api_key: unused
EOF
XDG_CACHE_HOME="$WORK/cache" "$VENV/bin/gatehouse" serve --config "$WORK/config.yaml" \
    --data-dir "$WORK/data" --port "$PORT" >"$WORK/server.log" 2>&1 &
PIDS="$PIDS $!"

BASE="http://127.0.0.1:$PORT"
tries=0
until curl -sf "$BASE/healthz" >/dev/null 2>&1; do
    tries=$((tries + 1))
    [ "$tries" -le 100 ] || fail "the server did not start within 20 s"
    sleep 0.2
done

answer=$(curl -sf "$BASE/v1/chat/completions" -H 'Content-Type: application/json' \
    -d '{"model": "upstream-chat", "messages": [{"role": "user", "content": "hi"}]}') \
    || fail "the proxied chat call failed"
echo "$answer" | grep -q '"hello from the stub"' || fail "unexpected answer: $answer"

models=$(curl -sf "$BASE/v1/models") || fail "GET /v1/models failed"
echo "$models" | grep -q '"upstream-chat"' || fail "upstream-chat not listed: $models"
echo "$models" | grep -q 'local/' && fail "local models listed without the 'local' extra: $models"

local=$(curl -s "$BASE/v1/chat/completions" -H 'Content-Type: application/json' \
    -d '{"model": "local/smollm2", "messages": [{"role": "user", "content": "hi"}]}')
echo "$local" | grep -q "gatehouse\[local\]" || fail "local/smollm2 without the hint: $local"

rag=$(curl -s "$BASE/v1/rag/collections")
echo "$rag" | grep -q "gatehouse\[rag\]" || fail "RAG without the hint: $rag"

done_at=$(date +%s)
echo "slim install: ok ($(du -sh "$VENV" | cut -f1) venv, installed in $((installed - start)) s," \
    "served a proxied call in $((done_at - installed)) s)"
