"""Helpers for scripts/bench/04-prune.sh: synthetic checkpoints and the NumPy / torch references.

  prune_reference.py make PATH TENSORS ROWS COLS SEED   write a safetensors file of F32 N(0, 0.02) tensors
                                                   named model.layers.I.mlp.up_proj.weight, streaming
  prune_reference.py numpy IN OUT SPARSITY             exact per-tensor magnitude pruning with np.partition
  prune_reference.py torch IN OUT SPARSITY             torch.nn.utils.prune.l1_unstructured per tensor
  prune_reference.py same A B                          exit 0 when two safetensors files hold equal tensors
"""
import json
import os
import struct
import sys

import numpy as np


def make(path, tensors, rows, cols, seed):
    rng = np.random.default_rng(seed)
    nbytes = rows * cols * 4
    header = {f"model.layers.{i}.mlp.up_proj.weight": {"dtype": "F32", "shape": [rows, cols],
                                                        "data_offsets": [i * nbytes, (i + 1) * nbytes]}
              for i in range(tensors)}
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - (8 + len(text)) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text)
        for _ in range(tensors):
            w = rng.standard_normal((rows, cols), dtype=np.float32)
            w *= np.float32(0.02)
            f.write(w.tobytes())


def numpy_prune(src, dst, sparsity):
    """Removes exactly round(s*n) smallest |w| per tensor (ties by position), as scalpel does."""
    from safetensors.numpy import safe_open, save_file
    out = {}
    with safe_open(src, "np") as f:
        for name in f.keys():
            w = f.get_tensor(name)
            flat = w.reshape(-1)
            a = np.abs(flat)
            k = round(sparsity * a.size)
            if k > 0:
                kth = np.partition(a, k - 1)[k - 1]
                mask = a < kth
                ties = np.flatnonzero(a == kth)[: k - int(np.count_nonzero(mask))]
                mask[ties] = True
                flat[mask] = 0
            out[name] = w
    save_file(out, dst)
    fsync(dst)


def torch_prune(src, dst, sparsity):
    import torch
    from safetensors.torch import load_file, save_file
    from torch.nn.utils import prune
    tensors = load_file(src)
    out = {}
    for name, w in tensors.items():
        holder = torch.nn.Module()
        holder.weight = torch.nn.Parameter(w, requires_grad=False)
        prune.l1_unstructured(holder, "weight", amount=sparsity)
        prune.remove(holder, "weight")
        out[name] = holder.weight.data.contiguous()
    save_file(out, dst)
    fsync(dst)


def fsync(path):
    """scalpel fsyncs its output before renaming it into place; the references do the same."""
    fd = os.open(path, os.O_RDONLY)
    os.fsync(fd)
    os.close(fd)


def same(a, b):
    from safetensors.numpy import safe_open
    with safe_open(a, "np") as fa, safe_open(b, "np") as fb:
        if sorted(fa.keys()) != sorted(fb.keys()):
            return False
        return all(np.array_equal(fa.get_tensor(k).view(np.uint32), fb.get_tensor(k).view(np.uint32)) for k in fa.keys())


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "make":
        make(sys.argv[2], *map(int, sys.argv[3:7]))
    elif cmd == "numpy":
        numpy_prune(sys.argv[2], sys.argv[3], float(sys.argv[4]))
    elif cmd == "torch":
        torch_prune(sys.argv[2], sys.argv[3], float(sys.argv[4]))
    elif cmd == "same":
        sys.exit(0 if same(sys.argv[2], sys.argv[3]) else 1)
    else:
        sys.exit(__doc__)
