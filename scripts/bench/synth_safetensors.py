#!/usr/bin/env python3
"""Writes a synthetic F32 safetensors file tensor by tensor (memory stays at one tensor).

Usage: synth_safetensors.py OUT --tensors N --rows R --cols C [--seed S]

Tensors `layers.{i}.weight` of shape [R, C], N(0, 1) values from a seeded generator; the header is the
reference writer's (compact JSON, names sorted, padded with spaces to 8 bytes), so the file is what
safetensors.numpy.save_file would write for the same tensors.
"""
import argparse
import json
import struct

import numpy as np


def main():
    p = argparse.ArgumentParser()
    p.add_argument("out")
    p.add_argument("--tensors", type=int, required=True)
    p.add_argument("--rows", type=int, required=True)
    p.add_argument("--cols", type=int, required=True)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    names = sorted(f"layers.{i}.weight" for i in range(a.tensors))
    size = a.rows * a.cols * 4
    header = {name: {"dtype": "F32", "shape": [a.rows, a.cols], "data_offsets": [i * size, (i + 1) * size]}
              for i, name in enumerate(names)}
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - (8 + len(text)) % 8) % 8)
    rng = np.random.default_rng(a.seed)
    with open(a.out, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for _ in names:
            f.write(rng.standard_normal((a.rows, a.cols), dtype=np.float32).tobytes())


if __name__ == "__main__":
    main()
