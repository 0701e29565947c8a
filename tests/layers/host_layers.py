#!/usr/bin/env python3
"""The host's folders form layers without cycles (issue 20).

Reads every `#include "host/<folder>/..."` under host/, builds the graph of folders (an edge
from the includer's folder to the included file's), and fails when

  - the graph has a cycle: the cycle is named, each edge with a file:line that makes it;
  - a folder includes one of its own layer or a higher one: the layers below say who may include
    whom, so that two folders of one layer (train and apply) stay independent;
  - a folder under host/ has no layer here (a new folder is given its place, not waved through).

    host_layers.py SOURCE_DIR
"""
import pathlib
import re
import sys

# Lowest first. A folder may include its own files and those of lower layers only.
LAYERS = [
    ["core"],                    # registry, text, temporary files, devices, precision: no host code below
    ["image", "restore", "ot"],  # libvips I/O; the Wiener lift; discrete OT
    ["data", "map"],             # datasets (read images); map files and the map as a module (with its lift)
    ["train", "apply"],          # training writes maps, apply reads them; neither knows the other
    ["lua"],                     # the Lua bindings of everything below
    ["cli"],                     # the program
]

INCLUDE = re.compile(r'^\s*#\s*include\s*[<"]host/([A-Za-z0-9_]+)/')


def includes(root):
    """(from folder, to folder, file, line) for every host include under root/host."""
    host = root / "host"
    for path in sorted(host.rglob("*")):
        if path.suffix not in (".hpp", ".cpp", ".h", ".cc", ".in") or not path.is_file():
            continue
        rel = path.relative_to(host)
        if len(rel.parts) < 2:
            continue  # host/monge_config.hpp.in: generated, includes nothing of the host
        src = rel.parts[0]
        for number, text in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            m = INCLUDE.match(text)
            if m:
                yield src, m.group(1), f"host/{rel.as_posix()}:{number}"


def find_cycle(edges):
    """One cycle of the folder graph as a list of folders (first == last), or None."""
    graph = {}
    for a, b in edges:
        if a != b:
            graph.setdefault(a, set()).add(b)
    state, stack = {}, []  # state: 1 on the stack, 2 done

    def visit(node):
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def main():
    root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else pathlib.Path(__file__).resolve().parents[2])
    rank = {folder: i for i, layer in enumerate(LAYERS) for folder in layer}
    where = {}
    for src, dst, at in includes(root):
        where.setdefault((src, dst), at)
    problems = []

    folders = sorted(p.name for p in (root / "host").iterdir() if p.is_dir())
    for folder in folders:
        if folder not in rank:
            problems.append(f"host/{folder}/ has no layer in {pathlib.Path(__file__).name}: add it to LAYERS")

    cycle = find_cycle(where)
    if cycle:
        steps = [f"  {a} -> {b}  ({where[(a, b)]})" for a, b in zip(cycle, cycle[1:])]
        problems.append("include cycle between host folders: " + " -> ".join(cycle) + "\n" + "\n".join(steps))

    for (src, dst), at in sorted(where.items()):
        if src == dst or src not in rank:
            continue
        if dst not in rank:
            problems.append(f"{at}: includes host/{dst}/, which does not exist or has no layer")
        elif rank[dst] >= rank[src]:
            problems.append(f"{at}: {src} includes {dst}, which is not in a lower layer "
                            f"({src}: layer {rank[src]}, {dst}: layer {rank[dst]})")

    if problems:
        print("\n".join(problems), file=sys.stderr)
        return 1
    edges = sorted((a, b) for a, b in where if a != b)
    print(f"host layers: {len(folders)} folders, {len(edges)} folder edges, no cycle: "
          + ", ".join(f"{a}->{b}" for a, b in edges))
    return 0


if __name__ == "__main__":
    sys.exit(main())
