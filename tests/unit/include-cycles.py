#!/usr/bin/env python3
"""No include cycles among the modules of agent/lib (STYLE.md: "Headers
include only what they use; no include cycles").

A module is a header and the sources that implement it: foo.h and foo.c,
and a source without a header of its own name (spec-canon.c,
registry-ref.c, seccomp-json.c) belongs to the header that declares most
of the functions it defines. A
module depends on another when any of its files includes the other's
header; a cycle is a strongly connected set of two or more modules (so
status.c including keeper.h while keeper.c includes status.h is one, though
no header includes itself).

Usage: include-cycles.py [DIR]   (default: agent/lib beside this script)
Exits 1 and names the cycle and the #include lines that make it.
"""
import os
import re
import sys

INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)
# a function defined at the start of a line, not static: its name
DEFINITION = re.compile(r'^(?!static\b)[A-Za-z_][\w \*]*?\b(berth_\w+)\s*\([^;]*?\)\s*\{', re.M)


def module_of(path, headers, texts):
    base = path[:-2]
    if base in headers:
        return base
    defined = set(DEFINITION.findall(texts[path]))
    best, most = base, 0
    for h in sorted(headers):
        n = sum(1 for f in defined if re.search(r'\b%s\s*\(' % re.escape(f), texts[headers[h]]))
        if n > most:
            best, most = h, n
    return best


def modules(top):
    files = sorted(f for f in os.listdir(top) if f.endswith((".c", ".h")))
    texts = {f: open(os.path.join(top, f), encoding="utf-8", errors="replace").read() for f in files}
    headers = {f[:-2]: f for f in files if f.endswith(".h")}
    owner = {f: module_of(f, headers, texts) for f in files}
    edges = {}
    for f in files:
        m = owner[f]
        edges.setdefault(m, {})
        for inc in INCLUDE.findall(texts[f]):
            if inc not in owner:
                continue  # generated or outside agent/lib
            n = owner[inc]
            if n != m:
                edges[m].setdefault(n, []).append('%s: #include "%s"' % (f, inc))
    return owner, edges


def strongly_connected(edges):
    """Tarjan's algorithm, iteratively: the components of the graph."""
    index, low, on, stack, out, counter = {}, {}, set(), [], [], [0]

    def visit(root):
        work = [(root, iter(sorted(edges.get(root, {}))))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on.add(root)
        while work:
            v, it = work[-1]
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter[0]
                    counter[0] += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(edges.get(w, {})))))
                    break
                if w in on:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on.discard(w)
                        comp.append(w)
                        if w == v:
                            break
                    out.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    top = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "..", "..", "agent", "lib")
    owner, edges = modules(top)
    cycles = [c for c in strongly_connected(edges) if len(c) > 1]
    for c in cycles:
        print("include cycle among %s:" % ", ".join(c))
        for m in c:
            for n in sorted(edges[m]):
                if n in c:
                    for why in edges[m][n]:
                        print("  %s -> %s  (%s)" % (m, n, why))
    nmod = len(set(owner.values()))
    if cycles:
        return 1
    print("no include cycle among the %d modules of %s" % (nmod, os.path.normpath(top)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
