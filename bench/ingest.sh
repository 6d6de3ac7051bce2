#!/usr/bin/env bash
# Ingest benchmark: validate + build the signed .amr of a real-world bundle (~2,500 files from
# Debian's libjs-mathjax, libjs-jquery and libjs-bootstrap4 under {id}/www/), against
# `unzip -t` of the same zip, in the same run. Needs a release build (make release).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.build/release/courier
[ -x "$BIN" ] || { echo "build first: make release" >&2; exit 1; }
for tool in hyperfine unzip zip openssl; do  # make bench installs these; standalone runs install them here
  command -v $tool >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq hyperfine unzip zip openssl; break; }
done

WORK=${WORK:-$(mktemp -d /tmp/courier-bench.XXXXXX)}
mkdir -p "$WORK"
ID=20171228
source bench/bundle.sh
make_bundle $ID
FILES=$(unzip -Z1 "$WORK/bundle.zip" | grep -vc '/$')
SIZE=$(du -m "$WORK/bundle.zip" | cut -f1)
openssl genrsa -out "$WORK/key.pem" 2048 2>/dev/null
echo "bundle: $FILES files, ${SIZE} MB zipped"

hyperfine --warmup 2 --runs 15 --export-json "$WORK/ingest.json" \
  -n "unzip -t" "unzip -tq $WORK/bundle.zip" \
  -n "courier check (validate + signed .amr)" "$BIN check $WORK/bundle.zip --app-id $ID --key $WORK/key.pem --out $WORK/out.amr"

python3 - "$WORK/ingest.json" <<'PY'
import json, sys
r = {x["command"]: x["mean"] for x in json.load(open(sys.argv[1]))["results"]}
u, c = r["unzip -t"], r["courier check (validate + signed .amr)"]
print(f"unzip -t {u*1000:.0f} ms, courier {c*1000:.0f} ms: ratio {c/u:.2f}x (goal <= 2x)")
PY
