#!/usr/bin/env bash
# CI: the API contract. Starts the release binary, runs schemathesis against its /openapi.json
# (every check, zero failures), generates a Python client from the same document and drives the
# server with it (tools/ci/client_check.py). Fails on any error. Run from anywhere; after
# `cargo test --release` (as in .ci/run) it uses the binary that built.
#
# The server runs with a token (mutating operations then require it, as documented) and with
# --max-job-flops 4e9 (the default is 2e14): schemathesis tries hundreds of specs and gets a few
# dozen accepted. Every report counts 5e8 in the estimate (its bound searches and predictions),
# so this admits small networks and sweeps of up to 8 points of them (a second or two each) and
# refuses larger ones; none keeps the two cores busy for long, and the event streams it reads
# end soon. Specs over the limit are refused with 422, as documented. The queue keeps its
# default length (1000): a full queue answers 503, which schemathesis would rightly count as a
# failure, and a run submits far fewer jobs than that.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
start=$(date +%s)
stage() { echo "api contract: $* ($(($(date +%s) - start)) s)"; }

target=${CARGO_TARGET_DIR:-target}
case $target in /*) ;; *) target="$root/$target" ;; esac
bin="$target/release/widthlab"
# The binary `cargo test --release` built (and ran its tests against): a no-op after it, where
# `cargo build --release` would build everything again (dev-dependencies unify other features).
cargo test --release --no-run --quiet

work=$(mktemp -d)
server_pid=
cleanup() {
    if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

# 1. Tools, pinned (requirements.txt; constraints.txt pins what they pull in).
python3 -m venv "$work/venv"
"$work/venv/bin/pip" install --quiet --disable-pip-version-check \
    -r tools/ci/requirements.txt -c tools/ci/constraints.txt
export PATH="$work/venv/bin:$PATH"
stage "tools installed: $(schemathesis --version), $(openapi-python-client --version)"

# 2. The server, on a free port, with a token.
token="ci-$(python3 -c 'import secrets; print(secrets.token_hex(16))')"
WIDTHLAB_TOKENS="ci:$token" RUST_LOG=warn "$bin" serve --bind 127.0.0.1:0 --database-url "$work/ci.db" \
    --threads 2 --max-job-flops 4e9 >"$work/server.out" 2>"$work/server.err" &
server_pid=$!
addr=
for _ in $(seq 1 100); do
    addr=$(sed -n '1s#^widthlab listening on http://##p' "$work/server.out")
    [ -n "$addr" ] && break
    kill -0 "$server_pid" 2>/dev/null || { cat "$work/server.err" >&2; echo "the server did not start" >&2; exit 1; }
    sleep 0.1
done
[ -n "$addr" ] || { echo "the server printed no address" >&2; exit 1; }
base="http://$addr"
python3 - "$base" "$work/openapi.json" <<'EOF'
import sys, time, urllib.request
base, out = sys.argv[1], sys.argv[2]
for _ in range(100):
    try:
        if urllib.request.urlopen(base + "/healthz", timeout=2).status == 200:
            break
    except OSError:
        time.sleep(0.1)
else:
    sys.exit("the server did not answer /healthz")
open(out, "wb").write(urllib.request.urlopen(base + "/openapi.json", timeout=10).read())
EOF
stage "server up at $base"

# 3. schemathesis: every check, every phase, a bounded number of cases per operation. From the
# temporary directory, so that nothing it (or hypothesis) caches lands in the working tree.
(cd "$work" && WIDTHLAB_CI_TOKEN=$token schemathesis --config-file "$root/tools/ci/schemathesis.toml" \
    run "$base/openapi.json" --no-color ${SCHEMATHESIS_ARGS:-})
stage "schemathesis passed"

# 4. A client generated from the same document, driving the server with its typed models.
printf 'content_type_overrides:\n  image/svg+xml: text/plain\n' >"$work/client.yaml"
openapi-python-client generate --path "$work/openapi.json" --config "$work/client.yaml" --meta none \
    --fail-on-warning --output-path "$work/client/widthlab_client" >"$work/generate.log" 2>&1 \
    || { cat "$work/generate.log" >&2; exit 1; }
WIDTHLAB_URL=$base WIDTHLAB_CI_TOKEN=$token WIDTHLAB_OPENAPI="$work/openapi.json" PYTHONPATH="$work/client" \
    python3 tools/ci/client_check.py
stage "generated client passed"

# 5. The server must have stayed up and never panicked; then it stops.
kill -0 "$server_pid" 2>/dev/null || { cat "$work/server.err" >&2; echo "the server died during the run" >&2; exit 1; }
if grep -q "panicked" "$work/server.err"; then
    grep -B2 -A10 "panicked" "$work/server.err" >&2
    echo "the server panicked during the run" >&2
    exit 1
fi
kill "$server_pid"
wait "$server_pid" || { echo "the server exited with status $? on SIGTERM" >&2; exit 1; }
server_pid=
stage "done"
