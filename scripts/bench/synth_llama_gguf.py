#!/usr/bin/env python3
"""Writes a synthetic Llama-architecture GGUF (random N(0, 0.02) weights) for the presets benchmark.

Usage: synth_llama_gguf.py OUT.gguf --layers N --hidden H --ffn F --heads A --kv-heads K --vocab V [--dtype f16|f32]

The metadata llama-quantize needs to type the tensors (general.architecture llama, llama.block_count,
llama.attention.head_count / head_count_kv, ...) is written; there is no tokenizer (llama-quantize does
not need one). Written one tensor at a time (gguf-py's GGUFWriter), so memory stays near one tensor.
"""
import argparse

import numpy as np
import gguf


def main():
    p = argparse.ArgumentParser()
    p.add_argument("out")
    for name, default in [("layers", 8), ("hidden", 2048), ("ffn", 5632), ("heads", 16), ("kv-heads", 4), ("vocab", 32000)]:
        p.add_argument(f"--{name}", type=int, default=default)
    p.add_argument("--dtype", default="f16", choices=["f16", "f32"])
    p.add_argument("--seed", type=int, default=7)
    a = p.parse_args()
    dt = np.float16 if a.dtype == "f16" else np.float32
    rng = np.random.default_rng(a.seed)
    h, kv = a.hidden, a.hidden // a.heads * a.kv_heads
    shapes = [("token_embd.weight", (a.vocab, h))]
    for i in range(a.layers):
        shapes += [(f"blk.{i}.attn_norm.weight", (h,)), (f"blk.{i}.attn_q.weight", (h, h)), (f"blk.{i}.attn_k.weight", (kv, h)),
                   (f"blk.{i}.attn_v.weight", (kv, h)), (f"blk.{i}.attn_output.weight", (h, h)),
                   (f"blk.{i}.ffn_norm.weight", (h,)), (f"blk.{i}.ffn_gate.weight", (a.ffn, h)),
                   (f"blk.{i}.ffn_up.weight", (a.ffn, h)), (f"blk.{i}.ffn_down.weight", (h, a.ffn))]
    shapes += [("output_norm.weight", (h,)), ("output.weight", (a.vocab, h))]
    w = gguf.GGUFWriter(a.out, arch="llama")
    w.add_name("synthetic-llama")
    w.add_block_count(a.layers)
    w.add_context_length(2048)
    w.add_embedding_length(h)
    w.add_feed_forward_length(a.ffn)
    w.add_head_count(a.heads)
    w.add_head_count_kv(a.kv_heads)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_file_type(1 if a.dtype == "f16" else 0)
    for name, shape in shapes:
        # Norms are F32 as convert_hf_to_gguf.py writes them.
        w.add_tensor_info(name, shape, np.dtype(np.float32 if len(shape) == 1 else dt),
                          int(np.prod(shape)) * (4 if len(shape) == 1 else np.dtype(dt).itemsize))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    for name, shape in shapes:
        if len(shape) == 1:
            t = np.ones(shape, dtype=np.float32)
        else:
            t = (rng.standard_normal(shape, dtype=np.float32) * np.float32(0.02)).astype(dt)
        w.write_tensor_data(t)
    w.close()


if __name__ == "__main__":
    main()
