#!/usr/bin/env python3
"""Function lengths of C files (agent/lib, agent/cmd): the lines between a
function's opening brace and its closing brace, both at column 0, as the
house style (clang-format) writes them. Prints median / p90 / max, the count
over LIMIT (default 60) and those functions.

Usage: flen.py [--limit N] DIR... (or files)"""
import os, re, statistics, sys


def functions(path):
    lines = open(path, encoding="utf-8").read().split("\n")
    i = 0
    while i < len(lines):
        if lines[i] == "{":
            j = i - 1
            while j > 0 and lines[j].startswith((" ", "\t")):
                j -= 1
            k = i + 1
            while k < len(lines) and lines[k] != "}":
                k += 1
            m = re.search(r"(\w+)\s*\(", " ".join(lines[j:i]))
            if m:
                yield k - i - 1, m.group(1)
            i = k
        i += 1


def main(argv):
    limit = 60
    if argv[:1] == ["--limit"]:
        limit, argv = int(argv[1]), argv[2:]
    for target in argv:
        files = sorted(os.path.join(target, f) for f in os.listdir(target)
                       if f.endswith(".c")) if os.path.isdir(target) else [target]
        rows = sorted((n, os.path.basename(p), name) for p in files for n, name in functions(p))
        ls = [r[0] for r in rows]
        p90 = ls[min(len(ls) - 1, int(round(0.9 * (len(ls) - 1))))]
        over = [r for r in rows if r[0] > limit]
        print(f"{target}: {len(ls)} functions, median {statistics.median(ls):g}, p90 {p90}, "
              f"max {max(ls)}, {len(over)} over {limit}")
        for n, f, name in over:
            print(f"  {n:4d} {f} {name}")


main(sys.argv[1:])
