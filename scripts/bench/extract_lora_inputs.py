#!/usr/bin/env python3
"""Writes a synthetic base/tuned safetensors pair for the extract-lora benchmark, streamed (one tensor in memory).

Usage: extract_lora_inputs.py LAYOUT BASE TUNED

LAYOUT
  svd8       8 layers of self_attn.o_proj [2048, 2048] and mlp.down_proj [2048, 5632], F32 (16 matrices,
             496 MiB per file). dW = U diag(s) V^T + noise: s_i = 0.96^i for i < 128, U and V random
             orthonormal, plus N(0, 1e-4^2) entries (a decaying spectrum sinking into a noise floor).
  tinyllama  TinyLlama-1.1B shapes (22 layers, hidden 2048, intermediate 5632, 4 KV heads of 64, vocab 32000,
             untied lm_head), F16, 1.1e9 parameters (2.2 GB per file). Linear layers: dW = rank-32 part
             (s_i = 0.5 * 0.9^i) + N(0, 1e-4^2); input/post-attention norms changed by N(0, 1e-3^2);
             embed_tokens, lm_head and model.norm unchanged.
Base weights are N(0, 0.02^2) (norms 1 + N(0, 0.02^2)); tuned = base + dW computed in f32, then stored.
Deterministic (seeded).
"""
import json
import os
import struct
import sys

import numpy as np


def svd8():
    shapes = {}
    for i in range(8):
        shapes[f"model.layers.{i}.self_attn.o_proj.weight"] = (2048, 2048)
        shapes[f"model.layers.{i}.mlp.down_proj.weight"] = (2048, 5632)
    return shapes, "F32"


def tinyllama():
    layers, hidden, inter, kv, vocab = 22, 2048, 5632, 256, 32000
    shapes = {"model.embed_tokens.weight": (vocab, hidden), "model.norm.weight": (hidden,),
              "lm_head.weight": (vocab, hidden)}
    linear = {"self_attn.q_proj": (hidden, hidden), "self_attn.k_proj": (kv, hidden),
              "self_attn.v_proj": (kv, hidden), "self_attn.o_proj": (hidden, hidden),
              "mlp.gate_proj": (inter, hidden), "mlp.up_proj": (inter, hidden), "mlp.down_proj": (hidden, inter)}
    for i in range(layers):
        shapes[f"model.layers.{i}.input_layernorm.weight"] = (hidden,)
        shapes[f"model.layers.{i}.post_attention_layernorm.weight"] = (hidden,)
        for m, s in linear.items():
            shapes[f"model.layers.{i}.{m}.weight"] = s
    return shapes, "F16"


def difference(rng, name, shape, layout):
    """dW in f32, or None when the tensor is unchanged."""
    if len(shape) == 1:
        return None if name == "model.norm.weight" else (1e-3 * rng.standard_normal(shape, dtype=np.float32))
    if "embed_tokens" in name or "lm_head" in name:
        return None
    k, s = (128, 0.96 ** np.arange(128)) if layout == "svd8" else (32, 0.5 * 0.9 ** np.arange(32))
    u = np.linalg.qr(rng.standard_normal((shape[0], k), dtype=np.float32))[0]
    v = np.linalg.qr(rng.standard_normal((shape[1], k), dtype=np.float32))[0]
    d = (u * s.astype(np.float32)) @ v.T
    d += 1e-4 * rng.standard_normal(shape, dtype=np.float32)
    return d


def main():
    layout, base_path, tuned_path = sys.argv[1:4]
    shapes, dtype = {"svd8": svd8, "tinyllama": tinyllama}[layout]()
    np_dtype = {"F32": np.float32, "F16": np.float16}[dtype]
    size = np.dtype(np_dtype).itemsize
    names = sorted(shapes)
    header, offset = {"__metadata__": {"format": "pt"}}, 0
    for name in names:
        n = int(np.prod(shapes[name])) * size
        header[name] = {"dtype": dtype, "shape": list(shapes[name]), "data_offsets": [offset, offset + n]}
        offset += n
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    rng = np.random.default_rng(0)
    with open(base_path + ".partial", "wb") as fb, open(tuned_path + ".partial", "wb") as ft:
        for f in (fb, ft):
            f.write(struct.pack("<Q", len(text)) + text)
        for name in names:
            shape = shapes[name]
            w = rng.standard_normal(shape, dtype=np.float32) * np.float32(0.02)
            if len(shape) == 1:
                w += 1
            d = difference(rng, name, shape, layout)
            base = w.astype(np_dtype)
            fb.write(base.tobytes())
            ft.write(base.tobytes() if d is None else (base.astype(np.float32) + d).astype(np_dtype).tobytes())
    os.replace(base_path + ".partial", base_path)
    os.replace(tuned_path + ".partial", tuned_path)


if __name__ == "__main__":
    main()
