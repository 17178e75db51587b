#!/usr/bin/env python3
"""Checks that includes point down: a file may include headers of its own folder and of
the folders below it in the layer order of docs/ARCHITECTURE.md (the ```layers block,
bottom first). A file belongs to the deepest listed folder that holds it; folders not
listed (tests/, bench/, examples/) may include anything.

    scripts/check_layers.py            # the tree; exit 1 and one line per upward include
    scripts/check_layers.py --self-test  # plants an upward include in a copy and expects a failure
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)
SOURCES = (".cpp", ".hpp", ".h", ".cu", ".in")


def read_layers(root):
    text = open(os.path.join(root, "docs", "ARCHITECTURE.md"), encoding="utf-8").read()
    block = re.search(r"```layers\n(.*?)```", text, re.S)
    if not block:
        sys.exit("check_layers: docs/ARCHITECTURE.md has no ```layers block")
    layers = [line.split("#")[0].strip().rstrip("/") for line in block.group(1).splitlines()]
    return [l for l in layers if l]


def layer_of(path, layers):
    """Index of the deepest layer folder holding path, or None."""
    best = None
    for i, folder in enumerate(layers):
        if path.startswith(folder + "/") and (best is None or len(folder) > len(layers[best])):
            best = i
    return best


def violations(root, layers):
    out = []
    for folder in layers:
        for dirpath, _, names in os.walk(os.path.join(root, folder)):
            for name in names:
                if not name.endswith(SOURCES):
                    continue
                path = os.path.relpath(os.path.join(dirpath, name), root)
                own = layer_of(path, layers)
                if own is None or layers[own] != folder:
                    continue  # a deeper layer's file: checked with that layer
                text = open(os.path.join(root, path), encoding="utf-8", errors="replace").read()
                for m in INCLUDE.finditer(text):
                    target = m.group(1)
                    theirs = layer_of(target, layers)
                    if theirs is not None and theirs > own:
                        line = text.count("\n", 0, m.start()) + 1
                        out.append(f"{path}:{line}: includes {target}: {layers[own]} may not include "
                                   f"{layers[theirs]}, which is above it")
    return out


def self_test():
    layers = read_layers(ROOT)
    with tempfile.TemporaryDirectory() as tmp:
        for folder in layers + ["docs"]:
            top = folder.split("/")[0]
            if not os.path.exists(os.path.join(tmp, top)):
                shutil.copytree(os.path.join(ROOT, top), os.path.join(tmp, top))
        planted = os.path.join(tmp, layers[0], "planted_upward.hpp")
        with open(planted, "w") as f:
            f.write('#include "%s/anything.hpp"\n' % layers[-1])
        found = violations(tmp, layers)
        if not any("planted_upward.hpp" in v for v in found):
            sys.exit("check_layers self-test: a planted upward include in %s was not found" % layers[0])
        print("check_layers self-test: the planted upward include was reported:")
        print("  " + [v for v in found if "planted_upward.hpp" in v][0])


def main():
    if "--self-test" in sys.argv:
        self_test()
        return
    layers = read_layers(ROOT)
    found = violations(ROOT, layers)
    for v in found:
        print(v)
    if found:
        print(f"check_layers: {len(found)} upward includes (layer order: docs/ARCHITECTURE.md)")
        sys.exit(1)
    print(f"check_layers: includes point down across {len(layers)} layers")


if __name__ == "__main__":
    main()
