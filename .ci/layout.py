#!/usr/bin/env python3
"""Checks the layout rules of docs/ARCHITECTURE.md on the workspace's non-test Rust sources.

1. No module cycles: within a crate, no set of source files imports each other (an import
   is a `crate::`, `super::` or child-module path that names an item of another file).
2. At most two non-test source files over 800 lines, and each says why at its top (a line
   in its first doc comment that starts with `//! Why this file is long:`).

Prints every problem and exits 1 when there is one; exits 0 otherwise.
"""
import os
import re
import sys
import tomllib

LONG_LINES = 800
MAX_LONG_FILES = 2
LONG_REASON = "//! Why this file is long:"


def crates(root):
    with open(os.path.join(root, "Cargo.toml"), "rb") as f:
        members = tomllib.load(f)["workspace"]["members"]
    for member in members:
        src = os.path.join(root, member, "src")
        if os.path.isdir(src):
            yield member, src


def strip_tests_and_comments(text):
    """The file without `#[cfg(test)]` items, comments and string literals."""
    out = []
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.strip() == "#[cfg(test)]":
            # Skip the attribute's item: a `mod x;` line or a braced block.
            j = i + 1
            depth = 0
            started = False
            while j < len(lines):
                depth += lines[j].count("{") - lines[j].count("}")
                if "{" in lines[j]:
                    started = True
                if (started and depth <= 0) or (not started and lines[j].rstrip().endswith(";")):
                    break
                j += 1
            i = j + 1
            continue
        out.append(line)
        i += 1
    return blank_comments_and_strings("\n".join(out))


def blank_comments_and_strings(text):
    """The code with comments removed and every string and char literal emptied."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif text.startswith("/*", i):
            depth, i = 1, i + 2
            while i < n and depth:
                if text.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif text.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    i += 1
        elif c == "r" and re.match(r'r#*"', text[i:i + 300]) and not (i and (text[i - 1].isalnum() or text[i - 1] == "_")):
            hashes = re.match(r'r(#*)"', text[i:]).group(1)
            end = text.find('"' + hashes, i + len(hashes) + 2)
            out.append('""')
            i = n if end < 0 else end + 1 + len(hashes)
        elif c == "b" and text.startswith('b"', i) and not (i and (text[i - 1].isalnum() or text[i - 1] == "_")):
            i += 1
        elif c == '"':
            i += 1
            while i < n and text[i] != '"':
                i += 2 if text[i] == "\\" else 1
            out.append('""')
            i += 1
        elif c == "'":
            # A char literal ('a', '\n', '\u{..}') or a lifetime ('a).
            m = re.match(r"'(\\.[^']*|[^\\'])'", text[i:i + 12])
            if m:
                out.append("' '")
                i += len(m.group(0))
            else:
                out.append(c)
                i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def module_files(src):
    """Module path (tuple) -> file, for every .rs file below src."""
    files = {}
    for dirpath, _, names in os.walk(src):
        for name in names:
            if not name.endswith(".rs"):
                continue
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, src)[:-3].split(os.sep)
            if rel in (["lib"], ["main"]):
                module = ()
            elif rel[-1] == "mod":
                module = tuple(rel[:-1])
            else:
                module = tuple(rel)
            if rel[0] in ("bin",):
                continue
            files[module] = path
    return files


def is_test_module(module, files, texts):
    """Whether `module` is declared under #[cfg(test)] (or named tests)."""
    if module and module[-1] == "tests":
        return True
    for k in range(1, len(module) + 1):
        parent = module[: k - 1]
        name = module[k - 1]
        text = texts.get(parent)
        if text is None:
            continue
        if re.search(r"#\[cfg\(test\)\]\s*(pub(\([a-z]+\))?\s+)?mod\s+" + name + r"\s*;", text):
            return True
    return False


def resolve(path, files):
    """The file a module path's longest known prefix lives in."""
    for k in range(len(path), -1, -1):
        if tuple(path[:k]) in files:
            return tuple(path[:k])
    return ()


def edges_of(module, code, files):
    edges = set()
    children = {m[-1] for m in files if len(m) == len(module) + 1 and m[:-1] == module}
    for match in re.finditer(r"(?<![A-Za-z0-9_:])((?:crate|super|self)(?:::[A-Za-z_][A-Za-z0-9_]*)+|[a-z_][a-z0-9_]*(?:::[A-Za-z_][A-Za-z0-9_]*)+)", code):
        if code.startswith("::{", match.end()):
            continue
        parts = match.group(1).split("::")
        if parts[0] == "crate":
            path = parts[1:]
        elif parts[0] in ("super", "self"):
            base = list(module)
            while parts and parts[0] in ("super", "self"):
                if parts[0] == "super":
                    base = base[:-1]
                parts = parts[1:]
            path = base + parts
        elif parts[0] in children:
            path = list(module) + parts
        else:
            continue
        target = resolve(path, files)
        if target != module:
            edges.add(target)
    # `use` groups: `use crate::a::{b, c::d}` names a::b and a::c.
    for match in re.finditer(r"\buse\s+(crate|super|self)((?:::[A-Za-z_][A-Za-z0-9_]*)*)::\{([^;]*)\};", code):
        head = match.group(1)
        prefix = [p for p in match.group(2).split("::") if p]
        if head == "crate":
            base = []
        else:
            base = list(module)
            if head == "super":
                base = base[:-1]
        for item in re.split(r",", match.group(3)):
            item = item.strip().split(" as ")[0].strip("{} ")
            if not item:
                continue
            path = base + prefix + item.split("::")
            target = resolve(path, files)
            if target != module:
                edges.add(target)
    return edges


def sccs(graph):
    index, low, on, stack, out = {}, {}, set(), [], []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            out.append(comp)

    sys.setrecursionlimit(10000)
    for v in list(graph):
        if v not in index:
            visit(v)
    return out


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..")
    problems = []
    long_files = []
    for crate, src in crates(root):
        files = module_files(src)
        texts = {}
        for module, path in files.items():
            with open(path, encoding="utf-8") as f:
                texts[module] = f.read()
        graph = {}
        for module, path in files.items():
            if is_test_module(module, files, texts):
                continue
            code = strip_tests_and_comments(texts[module])
            graph[module] = {
                e for e in edges_of(module, code, files)
                if e in files and not is_test_module(e, files, texts)
            }
            n_lines = texts[module].count("\n")
            if n_lines > LONG_LINES:
                long_files.append((os.path.relpath(path, root), n_lines, LONG_REASON in texts[module]))
        for comp in sccs(graph):
            if len(comp) > 1:
                names = sorted(os.path.relpath(files[m], root) for m in comp)
                problems.append(f"module cycle in {crate}: " + " <-> ".join(names))
    for path, n_lines, has_reason in sorted(long_files):
        if not has_reason:
            problems.append(f"{path}: {n_lines} lines, over {LONG_LINES}, without a `{LONG_REASON}` line")
    if len(long_files) > MAX_LONG_FILES:
        problems.append(
            f"{len(long_files)} source files over {LONG_LINES} lines (at most {MAX_LONG_FILES}): "
            + ", ".join(f"{p} ({n})" for p, n, _ in sorted(long_files))
        )
    for problem in problems:
        print(problem)
    if not problems:
        print(f"layout: no module cycles; {len(long_files)} long file(s), each with its reason")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
