#!/usr/bin/env python3
"""Validate Compose files offline: the Compose Specification's JSON Schema, plus the checks
`docker compose config` would make that a schema cannot express, plus Mist's own rules.

Usage: compose_schema.py SCHEMA.json FILE.yaml...   (exit 0 valid, 1 invalid, 2 could not run)

For each file:
  1. YAML parses, with no duplicate keys (PyYAML would silently keep the last one; Compose
     refuses them).
  2. Variables are interpolated the way Compose does with an empty environment
     (${VAR:-default} -> default, ${VAR} -> "", $$ -> $), then the result is validated
     against the vendored Compose Specification schema (JSON Schema draft 2020-12).
  3. References resolve: depends_on services, secrets, configs, named volumes and networks
     are declared; a `condition: service_healthy` dependency has a healthcheck; every
     service has an image or a build.
  4. Mist's rule "secrets come from files": no environment variable that looks like a secret
     (…PASSWORD, …SECRET, …TOKEN, …KEY) unless it is a *_FILE pointing to a declared secret
     under /run/secrets/, and no password inside a database URL.
"""

import hashlib
import re
import sys

try:
    import yaml
    from jsonschema import Draft202012Validator
except ImportError as e:  # pragma: no cover
    print(f"FAIL compose: cannot import {e.name}: install PyYAML and jsonschema", file=sys.stderr)
    sys.exit(2)

# The vendored schema: compose-spec.json as shipped in check-jsonschema 0.39.0 (PyPI),
# builtin_schemas/vendor/compose-spec.json; its sha256 is recorded there too.
SCHEMA_SHA256 = "d549057ebc2925f39f62799eab0db7b9e2c18b35b6c00595199116da3ed10e64"

SECRET_NAME = re.compile(r"(PASSWORD|PASSWD|SECRET|TOKEN|(^|_)KEY|PGPASS)", re.I)
URL_WITH_PASSWORD = re.compile(r"^[a-z][a-z0-9+.-]*://[^/@:]*:[^/@]+@", re.I)


class UniqueKeyLoader(yaml.SafeLoader):
    """A SafeLoader that refuses duplicate mapping keys."""


def _construct_mapping(loader, node, deep=False):
    seen = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping", node.start_mark,
                f"found duplicate key {key!r} (first at line {seen[key] + 1})", key_node.start_mark)
        seen[key] = key_node.start_mark.line
    loader.flatten_mapping(node)
    return dict(loader.construct_pairs(node, deep=deep))


UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)

_VAR = re.compile(r"\$(?:(\$)|\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])((?:[^{}]|\{[^{}]*\})*))?\}|([A-Za-z_][A-Za-z0-9_]*))")


def interpolate(value, errors, where):
    """Compose-style interpolation with an empty environment."""
    if isinstance(value, dict):
        return {k: interpolate(v, errors, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, errors, f"{where}[{i}]") for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def sub(m):
        if m.group(1):
            return "$"
        op, arg = m.group(3), m.group(4)
        if op in (":-", "-"):
            return interpolate(arg, errors, where)
        if op in (":?", "?"):
            return "required-variable"  # Compose would stop here unless the variable is set
        return ""  # ${VAR}, $VAR, ${VAR:+alt} with VAR unset

    out = _VAR.sub(sub, value)
    if "${" in out:
        errors.append(f"{where}: unbalanced or invalid interpolation in {value!r}")
    return out


def short_volume_source(spec):
    """The source of a short-syntax volume 'SRC:DST[:MODE]', or None for an anonymous one."""
    parts = spec.split(":")
    return parts[0] if len(parts) >= 2 else None


def check_references(doc, errors):
    services = doc.get("services") or {}
    for kind in ("secrets", "configs", "volumes", "networks"):
        doc.setdefault(kind, None)
    declared = {k: set((doc.get(k) or {}).keys()) for k in ("secrets", "configs", "volumes", "networks")}
    declared["networks"].add("default")

    for name, svc in services.items():
        where = f"services.{name}"
        if not isinstance(svc, dict):
            continue
        if "image" not in svc and "build" not in svc and "extends" not in svc:
            errors.append(f"{where}: neither image nor build")
        deps = svc.get("depends_on") or {}
        dep_items = deps.items() if isinstance(deps, dict) else ((d, {}) for d in deps)
        for dep, cond in dep_items:
            if dep not in services:
                errors.append(f"{where}.depends_on: unknown service {dep!r}")
            elif isinstance(cond, dict) and cond.get("condition") == "service_healthy":
                hc = (services[dep] or {}).get("healthcheck")
                if not hc or hc.get("disable"):
                    errors.append(f"{where}.depends_on.{dep}: service_healthy, but {dep} has no healthcheck")
        for kind in ("secrets", "configs"):
            for item in svc.get(kind) or []:
                ref = item if isinstance(item, str) else item.get("source")
                if ref not in declared[kind]:
                    errors.append(f"{where}.{kind}: {ref!r} is not declared under top-level {kind}")
        for i, vol in enumerate(svc.get("volumes") or []):
            if isinstance(vol, str):
                src = short_volume_source(vol)
                kind_is_volume = src is not None and not src.startswith(("/", ".", "~"))
            else:
                src = vol.get("source")
                kind_is_volume = vol.get("type") == "volume" and src
            if kind_is_volume and src not in declared["volumes"]:
                errors.append(f"{where}.volumes[{i}]: named volume {src!r} is not declared")
        nets = svc.get("networks") or {}
        for net in nets if isinstance(nets, (dict, list)) else []:
            if net not in declared["networks"]:
                errors.append(f"{where}.networks: {net!r} is not declared")


def check_secrets_from_files(doc, errors):
    for name, svc in (doc.get("services") or {}).items():
        if not isinstance(svc, dict):
            continue
        env = svc.get("environment") or {}
        if isinstance(env, list):
            env = dict(e.split("=", 1) if "=" in e else (e, None) for e in env)
        mounted = {s if isinstance(s, str) else (s.get("target") or s.get("source"))
                   for s in svc.get("secrets") or []}
        for var, val in env.items():
            where = f"services.{name}.environment.{var}"
            val = "" if val is None else str(val)
            if URL_WITH_PASSWORD.match(val):
                errors.append(f"{where}: a password inside a URL; use a secret file instead")
            if not SECRET_NAME.search(var):
                continue
            if var.endswith("_FILE") or var == "PGPASSFILE":
                m = re.fullmatch(r"/run/secrets/([^/]+)", val)
                if not m or m.group(1) not in mounted:
                    errors.append(f"{where}: {val!r} is not one of this service's secrets under /run/secrets/")
            else:
                errors.append(f"{where}: looks like a secret in the environment; use {var}_FILE and a secret")


def main(argv):
    if len(argv) < 3:
        print(next(l for l in __doc__.splitlines() if l.startswith("Usage")), file=sys.stderr)
        return 2
    schema_path, files = argv[1], argv[2:]
    raw = open(schema_path, "rb").read()
    digest = hashlib.sha256(raw).hexdigest()
    if digest != SCHEMA_SHA256:
        print(f"FAIL compose: schema {schema_path}: sha256 {digest} is not the vendored {SCHEMA_SHA256}")
        return 1
    import json
    schema = json.loads(raw)
    Draft202012Validator.check_schema(schema)
    validator = Draft202012Validator(schema)

    failed = False
    for path in files:
        errors = []
        try:
            with open(path, encoding="utf-8") as f:
                doc = yaml.load(f, Loader=UniqueKeyLoader)
        except (OSError, yaml.YAMLError) as e:
            print(f"FAIL compose: {path}:")
            for line in str(e).splitlines():
                print(f"     {line}")
            failed = True
            continue
        if not isinstance(doc, dict):
            print(f"FAIL compose: {path}: not a mapping")
            failed = True
            continue
        doc = interpolate(doc, errors, "")
        for err in sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path)):
            loc = ".".join(str(p) for p in err.absolute_path) or "(top level)"
            errors.append(f"{loc}: {err.message}")
        check_references(doc, errors)
        check_secrets_from_files(doc, errors)
        if errors:
            failed = True
            print(f"FAIL compose: {path}:")
            for e in errors:
                print(f"     {e}")
        else:
            names = ", ".join(doc.get("services") or {})
            print(f"OK   compose: {path}: Compose Specification schema, references, secrets as files (services: {names})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
