"""Import cycles between the host library's top-level modules.

Reads host/src/*.rs and host/src/*/ (the library's modules; the CLI in
host/src/cli is a separate crate root), collects every `crate::MODULE`
reference of each top-level module, and prints the cycles among them (a
strongly connected group of more than one module, or a module that names
itself through `crate::`). Exits 1 if there is any, so the test command fails.
`--graph` prints every module's imports instead."""

import pathlib
import re
import sys

SRC = pathlib.Path(__file__).resolve().parent.parent / "host" / "src"
SKIP = {"lib", "main", "cli"}


def modules():
    found = {}
    for path in SRC.iterdir():
        name = path.stem if path.suffix == ".rs" else path.name
        if name in SKIP or (path.is_file() and path.suffix != ".rs"):
            continue
        files = [path] if path.is_file() else sorted(path.rglob("*.rs"))
        # Test modules may reach anywhere; only the code's own structure counts.
        found[name] = "\n".join(
            re.split(r"#\[cfg\(test\)\]\s*mod tests", f.read_text())[0] for f in files
        )
    return found


def imports(text, names):
    used = set(re.findall(r"\bcrate::(\w+)", text))
    for group in re.findall(r"\bcrate::\{([^}]*)\}", text):
        used |= set(re.findall(r"(?:^|,)\s*(\w+)", group))
    return {u for u in used if u in names}


def cycles(graph):
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                out.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def main():
    mods = modules()
    graph = {name: imports(text, mods) - {name} for name, text in mods.items()}
    if "--graph" in sys.argv:
        for name in sorted(graph):
            print(f"{name} -> {', '.join(sorted(graph[name])) or '(nothing)'}")
        return 0
    found = cycles(graph)
    for group in found:
        print("import cycle between host modules: " + " <-> ".join(group), file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
