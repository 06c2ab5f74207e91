#!/usr/bin/env python3
"""Folded stacks ("a;b;c 123" per line, as heaptrack_print -F writes them) to an SVG
flame graph, through the npm `flamegraph` package (which reads V8 cpuprofile
trees): the stacks become a call tree whose self counts are the bytes.

usage: folded_to_svg.py STACKS.folded OUT.svg [title]
"""
import json
import os
import subprocess
import sys


def tree(path):
    root = {"functionName": "(all)", "url": "", "lineNumber": 0, "callUID": 1, "id": 1, "hitCount": 0, "children": []}
    ids = [1]

    def child(node, name):
        for c in node["children"]:
            if c["functionName"] == name:
                return c
        ids[0] += 1
        c = {"functionName": name, "url": "", "lineNumber": 0, "callUID": ids[0], "id": ids[0], "hitCount": 0,
             "children": []}
        node["children"].append(c)
        return c

    with open(path, errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            stack, _, count = line.rpartition(" ")
            if not stack or not count.isdigit():
                continue
            node = root
            for frame in stack.split(";"):
                node = child(node, frame.strip() or "??")
            node["hitCount"] += int(count)
    return {"head": root, "startTime": 0, "endTime": 1, "samples": [], "timestamps": []}


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    here = os.path.dirname(os.path.abspath(__file__))
    tool = os.path.join(here, "node_modules", ".bin", "flamegraph")
    if not os.path.exists(tool):
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--silent"], cwd=here, check=True)
    profile = json.dumps(tree(sys.argv[1]))
    with open(sys.argv[2], "w") as out:
        subprocess.run([tool, "-t", "cpuprofile", "--countname", "bytes"], input=profile.encode(), stdout=out, check=True)


if __name__ == "__main__":
    main()
