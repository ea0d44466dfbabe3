#!/usr/bin/env bash
# Fuzzes the read API from its own OpenAPI document with schemathesis, against a running
# `mistd demo` on 127.0.0.1, as the demo's admin and as its friend. Fails on any 5xx
# response or any response that does not match the document.
#
# Usage: api/fuzz/schemathesis.sh            (from the repository root)
#   MISTD=path/to/mistd     the binary to run [default: build target/debug/mistd]
#   FUZZ_EXAMPLES=N         examples per operation [default: 50]
#   FUZZ_VENV=DIR           the Python virtualenv for schemathesis [default: a temp dir]
#
# Everything it starts is stopped on exit; the demo lives in a temp dir that is removed.
set -euo pipefail

root="$(cd "$(dirname "$0")/../.." && pwd)"
work="$(mktemp -d)"
mistd_pid=""
cleanup() {
    if [ -n "$mistd_pid" ] && kill -0 "$mistd_pid" 2>/dev/null; then
        kill -TERM "$mistd_pid" 2>/dev/null || true
        wait "$mistd_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

if [ -z "${MISTD:-}" ]; then
    (cd "$root" && cargo build --quiet -p mistd)
    MISTD="$root/target/debug/mistd"
fi

venv="${FUZZ_VENV:-$work/venv}"
if [ ! -x "$venv/bin/schemathesis" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check 'schemathesis>=4,<5'
fi

port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
base="http://127.0.0.1:$port"
"$MISTD" demo --dir "$work/demo" --listen "127.0.0.1:$port" >"$work/demo.out" 2>"$work/demo.err" &
mistd_pid=$!

# The demo converges (about a minute in a debug build), then prints where it serves.
deadline=$((SECONDS + 600))
until grep -q '^Serving the demo' "$work/demo.out" 2>/dev/null; do
    if ! kill -0 "$mistd_pid" 2>/dev/null || [ "$SECONDS" -ge "$deadline" ]; then
        echo "mistd demo did not start serving:" >&2
        tail -n 20 "$work/demo.err" >&2
        exit 2
    fi
    sleep 1
done

# The demo prints each user's one-time password once: `  <name>  <role>  <password>`.
password_of() {
    awk -v user="$1" '$1 == user && NF == 3 { print $3; exit }' "$work/demo.out"
}
token_of() {
    curl --silent --show-error --fail -X POST "$base/v1/auth/login" \
        -H 'content-type: application/json' \
        -d "{\"user\": \"$1\", \"password\": \"$(password_of "$1")\"}" |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["token"])'
}

# Both tokens first: fuzzing the login uses up the address's failed-login allowance.
admin_token="$(token_of admin)"
friend_token="$(token_of friend)"

# A second pass pins the path parameters to things that exist (a public game, its first
# version, its pack), so the fuzzer reaches past the 404s into manifests, plans, ranges and
# repairs; the first pass fuzzes the names themselves.
plan="$(curl --silent --show-error --fail -H "Authorization: Bearer $admin_token" "$base/v1/games/starfall/update")"
digest="$(python3 -c 'import json, sys; print(json.loads(sys.argv[1])["steps"][0]["digest"])' "$plan")"
version="$(curl --silent --show-error --fail -H "Authorization: Bearer $admin_token" "$base/v1/games/starfall" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["versions"][0]["name"])')"
printf '[parameters]\n"path.game" = "starfall"\n"path.version" = "%s"\n"path.digest" = "%s"\n' \
    "$version" "$digest" >"$work/real-names.toml"
: >"$work/free.toml"

# Schemathesis keeps its example database in the working directory: keep it in the temp dir.
cd "$work"
status=0
for user in admin friend; do
    token="${user}_token"
    for config in free real-names; do
        echo "== schemathesis as $user, $config"
        # /v1/events is an endless stream by design; the Rust tests cover it. The rate
        # limit's 429 on the login is part of the document.
        "$venv/bin/schemathesis" --config-file "$work/$config.toml" run "$base/v1/openapi.json" \
            --url "$base" \
            --header "Authorization: Bearer ${!token}" \
            --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
            --exclude-path /v1/events \
            --max-examples "${FUZZ_EXAMPLES:-50}" \
            --request-timeout 30 \
            --seed 1 \
            --no-color || status=1
    done
done

if grep -qE 'panicked|internal error' "$work/demo.err"; then
    echo "the server logged a panic or an internal error:" >&2
    grep -E 'panicked|internal error|request failed' "$work/demo.err" >&2 | head -n 20
    status=1
fi
exit "$status"
