"""The Python peers timed by scripts/bench/03-quantize.sh. Each prints one JSON object.

  quantize_reference.py gguf IN TYPE RUNS [SCALPEL_OUT]
        gguf-py's NumPy gguf.quants.quantize (TYPE q8_0 or q4_0) on every tensor of the F32 safetensors IN;
        only the quantize calls are timed (perf_counter around each, summed per run). With SCALPEL_OUT (a
        .gguf scalpel wrote from IN), also says whether every tensor's bytes are identical.
  quantize_reference.py copy IN RUNS
        a plain memory copy of the same tensors (np.copyto into preallocated arrays), timed the same way.
  quantize_reference.py bnb IN RUNS [SCALPEL_OUT]
        bitsandbytes' quantize_4bit (CPU, NF4, block 64, no double quant) on torch tensors made from the same
        tensors; needs torch and bitsandbytes. With SCALPEL_OUT (scalpel's nf4 .safetensors), compares the
        codes and absmax.
  quantize_reference.py gguf-file IN TYPE RUNS OUT
        file to file with gguf-py, as a conversion script does it: open IN with safetensors, quantize every
        tensor with gguf.quants.quantize, write OUT with gguf.GGUFWriter; each run is timed from opening IN
        to closing OUT (imports and interpreter start excluded).
  quantize_reference.py bnb-file IN RUNS OUT
        file to file with bitsandbytes: load IN with safetensors into torch, quantize_4bit (NF4, block 64)
        every tensor, save the codes and absmax of each with safetensors.torch.save_file; timed the same way.
  quantize_reference.py nf4-numpy IN RUNS [SCALPEL_OUT]
        the NumPy transcription of bitsandbytes' quantize_4bit (fixtures/bnb/make_bnb_vectors.py), for when
        bitsandbytes cannot be imported.

Output: {"median": s, "min": s, "max": s, "runs": [s...], "bytes": input bytes, "identical": bool|null}.
"""
import importlib.util
import json
import os
import statistics
import sys
import time

import numpy as np
from safetensors import safe_open

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def tensors(path):
    """The tensors of IN, loaded once (outside any timing)."""
    with safe_open(path, "np") as f:
        return {name: f.get_tensor(name) for name in f.keys()}


def timed_runs(runs, data, call):
    """Runs `call(array)` on every tensor `runs` times; returns the per-run sums of the call times and
    the results of the last run."""
    sums, results = [], {}
    for _ in range(runs):
        total = 0.0
        for name, array in data.items():
            start = time.perf_counter()
            results[name] = call(array)
            total += time.perf_counter() - start
        sums.append(total)
    return sums, results


def report(sums, data, identical=None):
    print(json.dumps({"median": statistics.median(sums), "min": min(sums), "max": max(sums), "runs": sums,
                      "bytes": sum(a.nbytes for a in data.values()), "identical": identical}))


def gguf_peer(path, qtype, runs, scalpel_out=None):
    import gguf
    kind = {"q8_0": gguf.GGMLQuantizationType.Q8_0, "q4_0": gguf.GGMLQuantizationType.Q4_0}[qtype]
    data = tensors(path)
    sums, results = timed_runs(runs, data, lambda a: gguf.quants.quantize(a, kind))
    identical = None
    if scalpel_out:
        reader = gguf.GGUFReader(scalpel_out)
        got = {t.name: np.asarray(t.data).tobytes() for t in reader.tensors}
        identical = sorted(got) == sorted(results) and all(got[n] == results[n].tobytes() for n in results)
    report(sums, data, identical)


def copy_peer(path, runs):
    data = tensors(path)
    targets = {name: np.empty_like(a) for name, a in data.items()}
    for name, a in data.items():  # touch the pages once, outside the timing
        np.copyto(targets[name], a)
    sums, _ = timed_runs(runs, data, lambda a: None)  # the loop overhead alone
    overhead = statistics.median(sums)
    sums = []
    for _ in range(runs):
        total = 0.0
        for name, a in data.items():
            start = time.perf_counter()
            np.copyto(targets[name], a)
            total += time.perf_counter() - start
        sums.append(total - overhead)
    report(sums, data)


def compare_four_bit(scalpel_out, results):
    with safe_open(scalpel_out, "np") as f:
        for name, (codes, absmax) in results.items():
            if f.get_tensor(name).tobytes() != codes.tobytes():
                return False
            if f.get_tensor(name + ".absmax").tobytes() != absmax.tobytes():
                return False
    return True


def bnb_peer(path, runs, scalpel_out=None):
    import warnings
    warnings.filterwarnings("ignore")
    import torch
    import bitsandbytes.functional as F
    data = tensors(path)
    inputs = {name: torch.from_numpy(a) for name, a in data.items()}

    def call(t):
        q, state = F.quantize_4bit(t, blocksize=64, quant_type="nf4")
        return q, state.absmax

    F.quantize_4bit(next(iter(inputs.values()))[:64], blocksize=64, quant_type="nf4")  # first-call setup
    sums, results = [], {}
    for _ in range(runs):
        total = 0.0
        for name, t in inputs.items():
            start = time.perf_counter()
            results[name] = call(t)
            total += time.perf_counter() - start
        sums.append(total)
    identical = None
    if scalpel_out:
        identical = compare_four_bit(scalpel_out, {n: (q.numpy(), a.numpy()) for n, (q, a) in results.items()})
    report(sums, data, identical)


def nf4_numpy_peer(path, runs, scalpel_out=None):
    spec = importlib.util.spec_from_file_location("make_bnb_vectors", os.path.join(REPO, "fixtures", "bnb", "make_bnb_vectors.py"))
    bnb = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bnb)
    data = tensors(path)
    sums, results = timed_runs(runs, data, lambda a: bnb.quantize_4bit(a.reshape(-1), "nf4", 64))
    identical = compare_four_bit(scalpel_out, results) if scalpel_out else None
    report(sums, data, identical)


def file_runs(runs, out, body):
    """Times `body()` (which writes `out`) `runs` times, removing `out` before each run."""
    sums = []
    for _ in range(runs):
        if os.path.exists(out):
            os.remove(out)
        start = time.perf_counter()
        body()
        sums.append(time.perf_counter() - start)
    return sums


def gguf_file_peer(path, qtype, runs, out):
    import gguf
    kind = {"q8_0": gguf.GGMLQuantizationType.Q8_0, "q4_0": gguf.GGMLQuantizationType.Q4_0}[qtype]

    def convert():
        writer = gguf.GGUFWriter(out, "llama")
        with safe_open(path, "np") as f:
            for name in f.keys():
                writer.add_tensor(name, gguf.quants.quantize(f.get_tensor(name), kind), raw_dtype=kind)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()

    sums = file_runs(runs, out, convert)
    print(json.dumps({"median": statistics.median(sums), "min": min(sums), "max": max(sums), "runs": sums,
                      "bytes": os.path.getsize(path), "identical": None}))
    os.remove(out)


def bnb_file_peer(path, runs, out):
    import warnings
    warnings.filterwarnings("ignore")
    import torch  # noqa: F401
    import bitsandbytes.functional as F
    from safetensors.torch import load_file, save_file

    def convert():
        tensors = {}
        for name, t in load_file(path).items():
            q, state = F.quantize_4bit(t, blocksize=64, quant_type="nf4")
            tensors[name] = q
            tensors[name + ".absmax"] = state.absmax
        save_file(tensors, out)

    sums = file_runs(runs, out, convert)
    print(json.dumps({"median": statistics.median(sums), "min": min(sums), "max": max(sums), "runs": sums,
                      "bytes": os.path.getsize(path), "identical": None}))
    os.remove(out)


def main():
    mode, path = sys.argv[1], sys.argv[2]
    if mode == "gguf":
        gguf_peer(path, sys.argv[3], int(sys.argv[4]), sys.argv[5] if len(sys.argv) > 5 else None)
    elif mode == "copy":
        copy_peer(path, int(sys.argv[3]))
    elif mode == "bnb":
        bnb_peer(path, int(sys.argv[3]), sys.argv[4] if len(sys.argv) > 4 else None)
    elif mode == "gguf-file":
        gguf_file_peer(path, sys.argv[3], int(sys.argv[4]), sys.argv[5])
    elif mode == "bnb-file":
        bnb_file_peer(path, int(sys.argv[3]), sys.argv[4])
    elif mode == "nf4-numpy":
        nf4_numpy_peer(path, int(sys.argv[3]), sys.argv[4] if len(sys.argv) > 4 else None)
    else:
        sys.exit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
