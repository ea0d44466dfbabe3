#!/usr/bin/env python3
"""Checks across deploy/ that no single tool makes: the files agree with mistd's interface
and with each other, and hold no secrets. Standard library only.

Usage: consistency.py DEPLOY_DIR   (exit 0 all OK, 1 a check failed)

  env      the env examples set only variables mistd (or compose) knows, with valid values,
           in a form systemd's EnvironmentFile= reads as meant (no trailing comments);
           every ${VAR} a compose file uses is documented in compose/env.example.
  topology the backhaul addresses agree: the home server's WireGuard address and mistd's
           MIST_LISTEN are what nginx and Caddy forward to; each WireGuard peer's
           AllowedIPs is the other end's address; the key placeholders pair up; mistd
           trusts the border's X-Forwarded-For (MIST_TRUSTED_PROXY).
  login routes  the paths nginx rate-limits and Caddy's @login matches include
           /v1/auth/login and are all routes the API serves (read from ../api/src).
  secrets  no private key, WireGuard key or generated secret is committed under deploy/.
"""

import configparser
import ipaddress
import re
import sys
from pathlib import Path

# mistd's settings (flags as MIST_* variables) and what else its environment may hold.
MISTD_VARS = {
    "MIST_SPECS", "MIST_NAS", "MIST_DATA", "MIST_DB", "MIST_LISTEN", "MIST_ROLE",
    "MIST_RESYNC", "MIST_WEBHOOK_SECRET_FILE", "MIST_JWT_SECRET_FILE", "MIST_TRUSTED_PROXY",
    "RUST_LOG", "PGPASSFILE", "HOME",
}
COMPOSE_VARS = {"MIST_SPECS", "MIST_SPECS_DIR", "MIST_NAS_DIR", "MIST_PUBLISH", "MIST_RESYNC", "RUST_LOG"}
ROLES = {"all", "api", "reconciler"}
ASSIGN = re.compile(r"^#?([A-Za-z_][A-Za-z0-9_]*)=(.*)$")

failures = 0


def report(name, problems, ok_text):
    global failures
    if problems:
        failures += 1
        print(f"FAIL {name}:")
        for p in problems:
            print(f"     {p}")
    else:
        print(f"OK   {name}: {ok_text}")


def parse_env_file(path, problems, allowed):
    """Lines of VAR=value (also commented-out ones, which are checked as examples)."""
    values = {}
    for n, line in enumerate(path.read_text().splitlines(), 1):
        stripped = line.strip()
        if not stripped or (stripped.startswith("#") and not ASSIGN.match(stripped)):
            continue
        m = ASSIGN.match(stripped)
        where = f"{path.name}:{n}"
        if not m:
            problems.append(f"{where}: not VAR=value: {line!r}")
            continue
        var, value = m.groups()
        if var not in allowed:
            problems.append(f"{where}: {var} is not a known setting ({', '.join(sorted(allowed))})")
        if re.search(r"\s#", value):
            problems.append(f"{where}: trailing comment would become part of {var}'s value")
        if re.search(r"(PASSWORD|SECRET|TOKEN)", var) and not var.endswith("_FILE"):
            problems.append(f"{where}: {var} puts a secret in the environment")
        if re.match(r"^[a-z][a-z0-9+.-]*://[^/@:]*:[^/@]+@", value, re.I):
            problems.append(f"{where}: a password inside a URL")
        if not stripped.startswith("#"):
            values[var] = value
        elif var not in values:
            values.setdefault("#" + var, value)
    return values


def check_env(deploy):
    problems = []
    unit = deploy / "systemd" / "mistd.service"
    for n, line in enumerate(unit.read_text().splitlines(), 1):
        m = re.match(r"^Environment=([A-Za-z_][A-Za-z0-9_]*)=", line)
        if m and m.group(1) not in MISTD_VARS:
            problems.append(f"mistd.service:{n}: Environment= sets unknown {m.group(1)}")
    for dropin in sorted((deploy / "systemd" / "mistd.service.d").glob("*.conf")):
        for n, line in enumerate(dropin.read_text().splitlines(), 1):
            m = re.match(r"^#?Environment=([A-Za-z_][A-Za-z0-9_]*)=(.*)", line)
            if m and m.group(1) not in MISTD_VARS:
                problems.append(f"{dropin.name}:{n}: Environment= sets unknown {m.group(1)}")
            if m and re.match(r"^[a-z]+://[^/@:]*:[^/@]+@", m.group(2)):
                problems.append(f"{dropin.name}:{n}: a password inside a URL")

    env = parse_env_file(deploy / "systemd" / "mistd.env.example", problems, MISTD_VARS)
    for key in ("MIST_ROLE", "#MIST_ROLE"):
        if key in env and env[key] not in ROLES:
            problems.append(f"mistd.env.example: MIST_ROLE={env[key]} is not one of {sorted(ROLES)}")
    if "MIST_RESYNC" in env and not env["MIST_RESYNC"].isdigit():
        problems.append(f"mistd.env.example: MIST_RESYNC={env['MIST_RESYNC']} is not a number of seconds")
    if "MIST_LISTEN" in env:
        try:
            host, port = env["MIST_LISTEN"].rsplit(":", 1)
            ipaddress.ip_address(host.strip("[]"))
            assert 0 < int(port) < 65536
        except (ValueError, AssertionError):
            problems.append(f"mistd.env.example: MIST_LISTEN={env['MIST_LISTEN']} is not ADDR:PORT")

    cenv = parse_env_file(deploy / "compose" / "env.example", problems, COMPOSE_VARS)
    documented = {k.lstrip("#") for k in cenv}
    for compose in sorted((deploy / "compose").glob("compose*.yaml")):
        for var in set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", compose.read_text())):
            if var not in documented:
                problems.append(f"{compose.name}: ${{{var}}} is not documented in compose/env.example")
    report("env", problems, "env examples and unit set only known settings, systemd-readable, no secrets; compose variables documented")
    return env


def read_wg(path):
    cp = configparser.ConfigParser(strict=False, interpolation=None)
    cp.optionxform = str
    cp.read_string(path.read_text())
    return cp


def check_topology(deploy, env):
    problems = []
    wg = deploy / "proxy" / "wireguard"
    border, home = read_wg(wg / "wg0-border.conf"), read_wg(wg / "wg0-home.conf")
    border_if = ipaddress.ip_interface(border["Interface"]["Address"])
    home_if = ipaddress.ip_interface(home["Interface"]["Address"])
    if border_if.network != home_if.network:
        problems.append(f"WireGuard addresses {border_if} and {home_if} are not on one network")
    if ipaddress.ip_network(border["Peer"]["AllowedIPs"]) != ipaddress.ip_network(f"{home_if.ip}/32"):
        problems.append("border's peer AllowedIPs is not the home server's address/32")
    if ipaddress.ip_network(home["Peer"]["AllowedIPs"]) != ipaddress.ip_network(f"{border_if.ip}/32"):
        problems.append("home's peer AllowedIPs is not the border's address/32")
    endpoint_port = home["Peer"]["Endpoint"].rsplit(":", 1)[1]
    if endpoint_port != border["Interface"].get("ListenPort"):
        problems.append(f"home's Endpoint port {endpoint_port} is not the border's ListenPort")
    # Placeholders only, and they pair up: X's private key <-> the peer's <X-public-key>.
    for name, cp, other in (("border", border, home), ("home", home, border)):
        priv = cp["Interface"]["PrivateKey"]
        if priv != f"<{name}-private-key>":
            problems.append(f"wg0-{name}.conf: PrivateKey must be the placeholder <{name}-private-key>")
        if other["Peer"]["PublicKey"] != f"<{name}-public-key>":
            problems.append(f"the peer of {name} must name <{name}-public-key>")

    backend = f"{home_if.ip}:8080"
    nginx = (deploy / "proxy" / "nginx" / "mist.conf").read_text()
    upstreams = re.findall(r"^\s*server\s+([0-9.:\[\]a-f]+);", nginx, re.M)
    if upstreams != [backend]:
        problems.append(f"nginx upstream servers {upstreams} are not [{backend!r}]")
    caddy = (deploy / "proxy" / "caddy" / "Caddyfile").read_text()
    proxies = re.findall(r"^\s*reverse_proxy\s+(\S+)", caddy, re.M)
    if proxies != [backend]:
        problems.append(f"Caddy reverse_proxy targets {proxies} are not [{backend!r}]")
    if env.get("MIST_LISTEN") != backend:
        problems.append(f"mistd.env.example MIST_LISTEN={env.get('MIST_LISTEN')} is not {backend}")
    trusted = env.get("MIST_TRUSTED_PROXY", "")
    if str(border_if.ip) not in [entry.strip() for entry in trusted.split(",")]:
        problems.append(f"mistd.env.example MIST_TRUSTED_PROXY={trusted!r} does not name the border {border_if.ip}")
    report("topology", problems,
           f"border {border_if.ip} -> WireGuard -> mistd {backend}, same in nginx, Caddy, env example; "
           "mistd trusts the border's X-Forwarded-For; key placeholders pair up")


def check_login_routes(deploy):
    """The login routes the proxies single out are routes mistd serves (a typo there leaves
    logins unlimited while looking limited)."""
    problems = []
    api = deploy.parent / "api" / "src"
    routes = set()
    for source in api.rglob("*.rs"):
        routes.update(re.findall(r'\.route\(\s*"([^"]+)"', source.read_text()))
    if not routes:
        report("login routes", [f"no .route(...) found below {api}"], "")
        return
    nginx = (deploy / "proxy" / "nginx" / "mist.conf").read_text()
    limited = [path for path, body in re.findall(r"location\s+=\s+(\S+)\s*\{([^}]*)\}", nginx)
               if "limit_req" in body]
    caddy = (deploy / "proxy" / "caddy" / "Caddyfile").read_text()
    matcher = re.search(r"@login\s*\{([^}]*)\}", caddy)
    caddy_paths = re.findall(r"^\s*path\s+(.+)$", matcher.group(1), re.M) if matcher else []
    caddy_paths = [p for line in caddy_paths for p in line.split()]
    for name, paths in (("nginx limit_req locations", limited), ("Caddy @login paths", caddy_paths)):
        if "/v1/auth/login" not in paths:
            problems.append(f"{name} {paths} do not include /v1/auth/login")
        for path in paths:
            if path not in routes:
                problems.append(f"{name}: {path} is not a route of mistd's API (api/src)")
    report("login routes", problems,
           f"nginx limits {limited}, Caddy matches {caddy_paths}: all routes mistd serves")


SECRET_PATTERNS = [
    (re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"), "a PEM private key"),
    (re.compile(r"(?<![A-Za-z0-9+/])[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=(?![A-Za-z0-9+/=])"), "a WireGuard-style key"),
    (re.compile(r"\$argon2id?\$v=\d+\$m=\d+"), "a password hash"),
    (re.compile(r"(?i)(secret|password|token)\s*[:=]\s*['\"]?[0-9a-f]{32,}"), "a generated secret"),
]


def check_secrets(deploy):
    problems = []
    n = 0
    for path in sorted(deploy.rglob("*")):
        rel = path.relative_to(deploy)
        if not path.is_file() or rel.parts[0] in ("secrets",) or "secrets" in rel.parts[:-1]:
            continue
        if path.name.endswith(".schema.json") or path.suffix == ".LICENSE":
            continue
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        n += 1
        for pattern, what in SECRET_PATTERNS:
            for m in pattern.finditer(text):
                line = text.count("\n", 0, m.start()) + 1
                problems.append(f"{rel}:{line}: looks like {what}")
    report("secrets", problems, f"no private keys, WireGuard keys or generated secrets in {n} files")


def main(argv):
    if len(argv) != 2:
        print(next(l for l in __doc__.splitlines() if l.startswith("Usage")), file=sys.stderr)
        return 2
    deploy = Path(argv[1])
    env = check_env(deploy)
    check_topology(deploy, env)
    check_login_routes(deploy)
    check_secrets(deploy)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
