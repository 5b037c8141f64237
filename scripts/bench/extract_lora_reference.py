#!/usr/bin/env python3
"""The peers' way of extracting a LoRA, in NumPy, and the error check of an adapter (extract-lora benchmark).

  extract_lora_reference.py extract BASE TUNED OUT_PREFIX RANKS ERRORS_JSON
      What mergekit-extract-lora and kohya's extract_lora_from_models do, minus torch: for each 2-D tensor,
      dW = tuned - base in f32, a FULL SVD (numpy.linalg.svd, full_matrices=False: LAPACK sgesdd), truncated
      to each rank in RANKS (comma-separated): lora_B = U_k S_k, lora_A = Vt_k, written as a PEFT adapter
      folder OUT_PREFIX-rK (alpha = r). The optimal relative error of each rank, sqrt(sum_{i>k} s_i^2) /
      ||dW||_F, goes to ERRORS_JSON as {tensor: {rank: error}}. Tensors are read one at a time.

  extract_lora_reference.py errors BASE TUNED ADAPTER ERRORS_JSON
      The actual relative error ||dW - alpha/r B A||_F / ||dW||_F of every module of a PEFT adapter folder
      (rank_pattern/alpha_pattern honoured), in float64, as {tensor: error}.
"""
import json
import os
import re
import sys

import numpy as np
from safetensors import safe_open
from safetensors.numpy import save_file

PREFIX = "base_model.model."


def difference(fb, ft, name):
    return ft.get_tensor(name).astype(np.float32) - fb.get_tensor(name).astype(np.float32)


def extract(base, tuned, out_prefix, ranks, errors_path):
    ranks = [int(r) for r in ranks.split(",")]
    factors = {r: {} for r in ranks}
    errors = {}
    with safe_open(base, "numpy") as fb, safe_open(tuned, "numpy") as ft:
        for name in fb.keys():
            if len(fb.get_slice(name).get_shape()) != 2:
                continue
            d = difference(fb, ft, name)
            if not d.any():
                continue
            u, s, vt = np.linalg.svd(d, full_matrices=False)
            energy = np.cumsum((s.astype(np.float64) ** 2)[::-1])[::-1]  # energy[k] = sum_{i>=k} s_i^2
            errors[name] = {}
            for r in ranks:
                path = PREFIX + name[:-len(".weight")]
                factors[r][path + ".lora_A.weight"] = np.ascontiguousarray(vt[:r])
                factors[r][path + ".lora_B.weight"] = np.ascontiguousarray(u[:, :r] * s[:r])
                errors[name][r] = float(np.sqrt(energy[r] / energy[0])) if r < len(s) else 0.0
    for r in ranks:
        folder = f"{out_prefix}-r{r}"
        os.makedirs(folder, exist_ok=True)
        save_file(factors[r], os.path.join(folder, "adapter_model.safetensors"), metadata={"format": "pt"})
        targets = sorted({k[len(PREFIX):].rsplit(".", 3)[0] for k in factors[r]})
        with open(os.path.join(folder, "adapter_config.json"), "w") as f:
            json.dump({"peft_type": "LORA", "r": r, "lora_alpha": r, "target_modules": targets,
                       "bias": "none", "fan_in_fan_out": False}, f, indent=2)
    with open(errors_path, "w") as f:
        json.dump(errors, f, indent=1)


def pattern(patterns, path, default):
    for key, value in patterns.items():
        if re.match(rf"(.*\.)?({key})$", path):
            return value
    return default


def errors(base, tuned, adapter, errors_path):
    config = json.load(open(os.path.join(adapter, "adapter_config.json")))
    out = {}
    with safe_open(base, "numpy") as fb, safe_open(tuned, "numpy") as ft, \
            safe_open(os.path.join(adapter, "adapter_model.safetensors"), "numpy") as fa:
        for key in fa.keys():
            if not key.endswith(".lora_A.weight"):
                continue
            path = key[len(PREFIX):-len(".lora_A.weight")]
            r = pattern(config.get("rank_pattern", {}), path, config["r"])
            alpha = pattern(config.get("alpha_pattern", {}), path, config["lora_alpha"])
            a = fa.get_tensor(key).astype(np.float64)
            b = fa.get_tensor(key.replace("lora_A", "lora_B")).astype(np.float64)
            d = difference(fb, ft, path + ".weight").astype(np.float64)
            out[path + ".weight"] = float(np.linalg.norm(d - alpha / r * (b @ a)) / np.linalg.norm(d))
    with open(errors_path, "w") as f:
        json.dump(out, f, indent=1)


if __name__ == "__main__":
    mode, *args = sys.argv[1:]
    {"extract": extract, "errors": errors}[mode](*args)
