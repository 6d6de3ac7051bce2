#!/usr/bin/env bash
# Soak: 10 minutes (SOAK_SECONDS) of mixed load on loopback against a fresh server: update
# checks, client events, uploads with release tasks (pause, resume, finish, delete), console
# pages. Fails on any failed request or when RSS after warm-up grows by more than 10 % (8 MB
# at least); prints RSS by minute and, from /metrics, where the memory is (heap in use and held
# free, SQLite, snapshot entries). Uses .build/release/courier when built (make release), else
# the debug build.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${COURIER_BIN:-$( [ -x .build/release/courier ] && echo .build/release/courier || echo .build/debug/courier )}
SECONDS_TO_RUN=${SOAK_SECONDS:-600}
DATA=$(mktemp -d /tmp/courier-soak-XXXXXX)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
PASSWORD=soak-password-1
trap 'kill $PID 2>/dev/null || true; rm -rf "$DATA"' EXIT
echo "$PASSWORD" | "$BIN" user add admin --role admin --data "$DATA" >/dev/null
TOKEN=$("$BIN" token create --user admin --scope read,upload,release,admin --data "$DATA")
"$BIN" serve --data "$DATA" --port "$PORT" > "$DATA/server.log" 2>&1 &
PID=$!
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.2; done
api() { curl -sf -H "Authorization: Bearer $TOKEN" -H "Content-Type: application/json" "$@" >/dev/null; }
api -X PUT -d '{"virtualDomain":"h5app.example.com"}' "http://127.0.0.1:$PORT/api/v1/settings"
api -X POST "http://127.0.0.1:$PORT/api/v1/settings/signing-key/generate"
api -d '{"id":"20171228","name":"Checkout"}' "http://127.0.0.1:$PORT/api/v1/apps"
echo "soak: $BIN for $SECONDS_TO_RUN s on port $PORT"
python3 bench/soak.py "$PORT" "$TOKEN" "$PID" "$SECONDS_TO_RUN" "$PASSWORD"
