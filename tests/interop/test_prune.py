"""Interop tests for `scalpel prune`: masks identical to a NumPy reference.

The reference rule (documented in docs/prune.md): k = round(S * n) (Python's round, halves to even);
the k entries removed are the first k of np.argsort(np.abs(w), kind="stable"), i.e. ties go by
position, lower index first; NaN sorts last (largest). Row scope applies that to each row, global scope
to the concatenation of the selected tensors in the order the checkpoint lists them (the safetensors
header's order), N:M to every group of M consecutive entries along a row (M - N removed), channel scope
to the rows' L2 norms.

Environment: SCALPEL_BIN (default .build/release/scalpel, else .build/debug/scalpel, under the repo).
"""
import json
import os
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
ST_DTYPE = {np.dtype(np.float32): "F32", np.dtype(np.float16): "F16", np.dtype(np.float64): "F64"}
NP_DTYPE = {"F32": np.float32, "F16": np.float16, "F64": np.float64, "BF16": np.uint16}


@pytest.fixture(scope="module")
def prune_bin() -> Path:
    if "SCALPEL_BIN" in os.environ:
        path = Path(os.environ["SCALPEL_BIN"])
    else:
        path = next((p for p in (REPO / ".build/release/scalpel", REPO / ".build/debug/scalpel") if p.is_file()),
                    REPO / ".build/release/scalpel")
    if not path.is_file():
        pytest.fail(f"scalpel binary not found at {path}: build it or set SCALPEL_BIN", pytrace=False)
    return path


def run(binary, *args, check=True):
    proc = subprocess.run([str(binary), *map(str, args)], capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if check and proc.returncode != 0:
        pytest.fail(f"scalpel {' '.join(map(str, args))} exited {proc.returncode}\n{proc.stderr}", pytrace=False)
    return proc


def prune(binary, src, dst, *flags):
    """Runs `scalpel prune SRC DST FLAGS... --json` and returns the parsed summary."""
    return json.loads(run(binary, "prune", src, dst, *flags, "--json").stdout)


def write_st(path, tensors, data_order=None):
    """Writes a safetensors file: [(name, array or (dtype, shape, raw))], the header listing them in the
    given order; their data in `data_order` (a permutation of the indices, default the same order)."""
    entries = []
    for name, t in tensors:
        if isinstance(t, np.ndarray):
            entries.append((name, ST_DTYPE[t.dtype], t.shape, np.ascontiguousarray(t).tobytes()))
        else:
            entries.append((name, *t))
    offsets, offset = {}, 0
    for i in data_order or range(len(entries)):
        offsets[i] = (offset, offset + len(entries[i][3]))
        offset += len(entries[i][3])
    header = {name: {"dtype": dtype, "shape": list(shape), "data_offsets": list(offsets[i])}
              for i, (name, dtype, shape, _) in enumerate(entries)}
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - (8 + len(text)) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(entries[i][3] for i in data_order or range(len(entries))))
    return path


def read_st(path):
    """{name: (dtype name, array)}; BF16 comes back as uint16 bits."""
    data = Path(path).read_bytes()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    out = {}
    for name, h in header.items():
        if name == "__metadata__":
            continue
        lo, hi = h["data_offsets"]
        arr = np.frombuffer(data[8 + n + lo:8 + n + hi], dtype=NP_DTYPE[h["dtype"]]).reshape(h["shape"])
        out[name] = (h["dtype"], arr)
    return out


def magnitudes(w, dtype="F32"):
    """|w| as the reference compares it (BF16 bits widened to f32)."""
    if dtype == "BF16":
        return np.abs((w.astype(np.uint32) << 16).view(np.float32))
    return np.abs(w)


def stable_mask(a, k):
    """True for the k first entries of np.argsort(a, kind='stable') of a flat magnitude array."""
    m = np.zeros(a.size, dtype=bool)
    m[np.argsort(a, kind="stable")[:k]] = True
    return m


def ref_tensor(w, s, dtype="F32"):
    return stable_mask(magnitudes(w, dtype).ravel(), round(s * w.size)).reshape(w.shape)


def ref_rows(w, s, dtype="F32"):
    rows = magnitudes(w, dtype).reshape(w.shape[0], -1)
    k = round(s * rows.shape[1])
    return np.stack([stable_mask(r, k) for r in rows]).reshape(w.shape)


def ref_pattern(w, n, m):
    groups = np.abs(w).reshape(-1, m)
    order = np.argsort(groups, axis=1, kind="stable")[:, : m - n]
    mask = np.zeros(groups.shape, dtype=bool)
    np.put_along_axis(mask, order, True, axis=1)
    return mask.reshape(w.shape)


def ref_channel(w, s):
    sq = (np.abs(w.reshape(w.shape[0], -1)).astype(np.float64) ** 2).sum(axis=1)
    rows = stable_mask(sq, round(s * w.shape[0]))
    return np.repeat(rows, w[0].size).reshape(w.shape)


def check_masked(before, after, mask):
    """Removed entries are all-zero bits; kept ones are bit-identical to the input."""
    bits = {2: np.uint16, 4: np.uint32, 8: np.uint64}[before.dtype.itemsize]
    b, a = before.view(bits), after.view(bits)
    assert after.dtype == before.dtype
    assert np.all(a[mask] == 0), f"{int(np.sum(a[mask] != 0))} entries should have been zeroed"
    assert np.array_equal(a[~mask], b[~mask]), f"{int(np.sum(a[~mask] != b[~mask]))} kept entries changed"


def data(kind, shape, dtype, seed):
    r = np.random.default_rng(seed)
    if kind == "random":
        w = r.standard_normal(shape)
    elif kind == "ties":
        w = r.choice(np.array([0.0, -0.0, 0.25, -0.25, 0.5, -0.5, 1.0, -1.0, 2.0]), size=shape)
    else:  # "nan": random with NaN, infinities and exact zeros sprinkled in
        w = r.standard_normal(shape)
        flat = w.reshape(-1)
        idx = r.choice(flat.size, size=flat.size // 20, replace=False)
        flat[idx[0::4]] = np.nan
        flat[idx[1::4]] = np.inf
        flat[idx[2::4]] = -np.inf
        flat[idx[3::4]] = 0.0
    return w.astype(dtype)


SHAPES = [("layers.0.q_proj.weight", (64, 300)), ("layers.0.up_proj.weight", (257, 129)), ("layers.1.down_proj.weight", (300, 1000))]


@pytest.mark.parametrize("kind", ["random", "ties", "nan"])
@pytest.mark.parametrize("dtype", [np.float32, np.float16])
@pytest.mark.parametrize("sparsity", [0.5, 0.3, 0.85])
def test_tensor_scope_matches_stable_argsort(prune_bin, tmp_path, kind, dtype, sparsity):
    tensors = [(name, data(kind, shape, dtype, seed)) for seed, (name, shape) in enumerate(SHAPES)]
    src = write_st(tmp_path / "in.safetensors", tensors + [("layers.0.norm.weight", np.ones(64, dtype))])
    summary = prune(prune_bin, src, tmp_path / "out.safetensors", "--sparsity", sparsity)
    out = read_st(tmp_path / "out.safetensors")
    by_name = {t["name"]: t for t in summary["tensors"]}
    for name, w in tensors:
        mask = ref_tensor(w, sparsity)
        check_masked(w, out[name][1], mask)
        assert by_name[name]["zeroed"] == round(sparsity * w.size) == mask.sum()
        zeros_after = np.count_nonzero(out[name][1] == 0)
        assert by_name[name]["achieved_sparsity"] == zeros_after / w.size
        if kind == "random":
            assert zeros_after == round(sparsity * w.size)  # exactly the target count
    assert np.array_equal(out["layers.0.norm.weight"][1], np.ones(64, dtype))
    assert summary["total"]["zeroed"] == sum(round(sparsity * w.size) for _, w in tensors)


def test_bf16_and_f64_masks_and_dtypes(prune_bin, tmp_path):
    w32 = data("ties", (40, 64), np.float32, 5) * np.float32(1.5)
    bf16 = (w32.view(np.uint32) >> 16).astype(np.uint16)
    w64 = data("random", (30, 50), np.float64, 6)
    src = write_st(tmp_path / "in.safetensors", [("a.weight", ("BF16", bf16.shape, bf16.tobytes())), ("b.weight", w64)])
    prune(prune_bin, src, tmp_path / "out.safetensors", "--sparsity", 0.6)
    out = read_st(tmp_path / "out.safetensors")
    assert out["a.weight"][0] == "BF16" and out["b.weight"][0] == "F64"
    check_masked(bf16, out["a.weight"][1], ref_tensor(bf16, 0.6, "BF16"))
    check_masked(w64, out["b.weight"][1], ref_tensor(w64, 0.6))


@pytest.mark.parametrize("kind", ["random", "ties"])
def test_keep_is_the_complement_rounded_on_the_kept_count(prune_bin, tmp_path, kind):
    w = data(kind, (35, 37), np.float32, 9)
    src = write_st(tmp_path / "in.safetensors", [("x.weight", w)])
    summary = prune(prune_bin, src, tmp_path / "out.safetensors", "--keep", 0.3)
    k = w.size - round(0.3 * w.size)
    check_masked(w, read_st(tmp_path / "out.safetensors")["x.weight"][1], stable_mask(np.abs(w).ravel(), k).reshape(w.shape))
    assert summary["tensors"][0]["zeroed"] == k


@pytest.mark.parametrize("kind", ["random", "ties", "nan"])
def test_row_scope_matches_per_row_reference(prune_bin, tmp_path, kind):
    tensors = [(name, data(kind, shape, np.float32, 10 + i)) for i, (name, shape) in enumerate(SHAPES)]
    src = write_st(tmp_path / "in.safetensors", tensors)
    summary = prune(prune_bin, src, tmp_path / "out.safetensors", "--sparsity", 0.45, "--scope", "row")
    out = read_st(tmp_path / "out.safetensors")
    for (name, w), entry in zip(tensors, summary["tensors"]):
        check_masked(w, out[name][1], ref_rows(w, 0.45))
        assert entry["zeroed"] == w.shape[0] * round(0.45 * w.shape[1])


@pytest.mark.parametrize("kind", ["random", "ties", "nan"])
def test_global_scope_one_threshold_ties_in_listing_order(prune_bin, tmp_path, kind):
    # Ties go in the order the checkpoint lists its tensors (for safetensors: the header's order, what
    # `scalpel inspect --tensors` shows), here deliberately neither alphabetical nor the data order.
    tensors = [("z.weight", data(kind, (100, 300), np.float32, 20)),
               ("a.weight", (data(kind, (200, 64), np.float32, 21) * 0.5).astype(np.float32)),
               ("m.weight", data(kind, (128, 128), np.float16, 22))]
    src = write_st(tmp_path / "in.safetensors", tensors, data_order=[1, 2, 0])
    summary = prune(prune_bin, src, tmp_path / "out.safetensors", "--sparsity", 0.6, "--scope", "global")
    out = read_st(tmp_path / "out.safetensors")
    flat = np.concatenate([np.abs(w).astype(np.float32).ravel() for _, w in tensors])
    k = round(0.6 * flat.size)
    mask, offset = stable_mask(flat, k), 0
    for name, w in tensors:
        check_masked(w, out[name][1], mask[offset:offset + w.size].reshape(w.shape))
        offset += w.size
    assert summary["total"]["zeroed"] == k
    assert [t["name"] for t in summary["tensors"]] == ["z.weight", "a.weight", "m.weight"]


@pytest.mark.parametrize("n,m", [(2, 4), (4, 8), (1, 4)])
@pytest.mark.parametrize("kind", ["random", "ties", "nan"])
def test_n_of_m_groups(prune_bin, tmp_path, n, m, kind):
    w = data(kind, (96, 256), np.float32, 30)
    h = data(kind, (16, 64), np.float16, 31)
    src = write_st(tmp_path / "in.safetensors", [("l.weight", w), ("h.weight", h)])
    summary = prune(prune_bin, src, tmp_path / "out.safetensors", "--pattern", f"{n}:{m}")
    out = read_st(tmp_path / "out.safetensors")
    check_masked(w, out["l.weight"][1], ref_pattern(w, n, m))
    check_masked(h, out["h.weight"][1], ref_pattern(h, n, m))
    # Group by group: at least M - N zeros in each, and the kept N are the largest |w| of the group.
    groups = out["l.weight"][1].reshape(-1, m)
    assert np.all((groups == 0).sum(axis=1) >= m - n)
    if kind == "random":
        assert np.all((groups == 0).sum(axis=1) == m - n)
        src_groups = np.abs(w.reshape(-1, m))
        kept_min = np.where(groups != 0, src_groups, np.inf).min(axis=1)
        removed_max = np.where(groups == 0, src_groups, -np.inf).max(axis=1)
        assert np.all(kept_min > removed_max)
    assert summary["pattern"] == f"{n}:{m}"
    assert summary["tensors"][0]["zeroed"] == w.size // m * (m - n)
    assert summary["tensors"][0]["target_sparsity"] == (m - n) / m


def test_channel_scope_zeroes_the_rows_with_smallest_norm(prune_bin, tmp_path):
    r = np.random.default_rng(40)
    w = (r.standard_normal((50, 80)) * r.uniform(0.1, 2, size=(50, 1))).astype(np.float32)
    src = write_st(tmp_path / "in.safetensors", [("c.weight", w)])
    summary = prune(prune_bin, src, tmp_path / "out.safetensors", "--sparsity", 0.3, "--scope", "channel")
    check_masked(w, read_st(tmp_path / "out.safetensors")["c.weight"][1], ref_channel(w, 0.3))
    assert summary["tensors"][0]["zeroed"] == 15 * 80
    kept = ~ref_channel(w, 0.3)
    expected = np.sqrt(1 - (w[kept].astype(np.float64) ** 2).sum() / (w.astype(np.float64) ** 2).sum())
    assert abs(summary["tensors"][0]["norm_removed_fraction"] - expected) < 1e-6


def test_existing_zeros_count_toward_the_target(prune_bin, tmp_path):
    w = data("random", (20, 50), np.float32, 50)
    w.reshape(-1)[::2] = 0  # half already zero
    src = write_st(tmp_path / "in.safetensors", [("x.weight", w)])
    summary = prune(prune_bin, src, tmp_path / "out.safetensors", "--sparsity", 0.3)
    out = read_st(tmp_path / "out.safetensors")["x.weight"][1]
    assert np.array_equal(out, w)  # the 30% removed are all existing zeros
    t = summary["tensors"][0]
    assert t["zeroed"] == 300 and t["achieved_sparsity"] == 0.5 and t["norm_removed_fraction"] == 0


def test_selection_flags_and_report_file(prune_bin, tmp_path):
    tensors = [("model.embed_tokens.weight", data("random", (100, 16), np.float32, 1)),
               ("model.layers.0.self_attn.q_proj.weight", data("random", (16, 16), np.float32, 2)),
               ("model.layers.0.mlp.up_proj.weight", data("random", (32, 16), np.float32, 3)),
               ("model.layers.0.input_layernorm.weight", np.ones(16, np.float32)),
               ("lm_head.weight", data("random", (100, 16), np.float32, 4))]
    src = write_st(tmp_path / "in.safetensors", tensors)
    report = tmp_path / "report.json"
    default = prune(prune_bin, src, tmp_path / "a.safetensors", "--sparsity", 0.5, "--report", report)
    assert [t["name"] for t in default["tensors"]] == ["model.layers.0.self_attn.q_proj.weight", "model.layers.0.mlp.up_proj.weight"]
    assert json.loads(report.read_text()) == default
    assert {s["name"] for s in default["skipped"]} == {"model.embed_tokens.weight", "model.layers.0.input_layernorm.weight", "lm_head.weight"}
    wide = prune(prune_bin, src, tmp_path / "b.safetensors", "--sparsity", 0.5, "--include-embeddings", "--include-head", "--skip", "*.up_proj.*")
    assert [t["name"] for t in wide["tensors"]] == ["model.embed_tokens.weight", "model.layers.0.self_attn.q_proj.weight", "lm_head.weight"]
    only = prune(prune_bin, src, tmp_path / "c.safetensors", "--sparsity", 0.5, "--only", "*.up_proj.*", "--only", "*q_proj*")
    assert len(only["tensors"]) == 2
    assert set(default["total"]) >= {"target_sparsity", "achieved_sparsity", "zeroed", "norm_removed_fraction"}
    assert set(default["tensors"][0]) >= {"name", "shape", "dtype", "target_sparsity", "achieved_sparsity", "zeroed", "norm_removed_fraction"}


def test_text_summary_and_zstd_output(prune_bin, tmp_path):
    w = data("random", (256, 256), np.float32, 60)
    src = write_st(tmp_path / "in.safetensors", [("x.weight", w)])
    proc = run(prune_bin, "prune", src, tmp_path / "out.safetensors.zst", "--sparsity", 0.5, "--zstd-level", 5)
    assert "x.weight" in proc.stdout and "50.00%" in proc.stdout and "total" in proc.stdout
    run(prune_bin, "prune", src, tmp_path / "out.safetensors", "--sparsity", 0.5)
    subprocess.run(["zstd", "-q", "-d", str(tmp_path / "out.safetensors.zst"), "-o", str(tmp_path / "dec.safetensors")], check=True)
    assert (tmp_path / "dec.safetensors").read_bytes() == (tmp_path / "out.safetensors").read_bytes()


def test_bad_inputs_fail_with_one_line_and_no_output(prune_bin, tmp_path):
    src = write_st(tmp_path / "in.safetensors", [("odd.weight", data("random", (4, 6), np.float32, 1)),
                                                 ("ids.weight", np.arange(16, dtype=np.float32).reshape(4, 4))])
    out = tmp_path / "out.safetensors"
    proc = run(prune_bin, "prune", src, out, "--pattern", "2:4", check=False)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and str(src) in lines[0] and "odd.weight" in lines[0] and "multiple of 4" in lines[0]
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["in.safetensors"]
    ints = write_st(tmp_path / "ints.safetensors", [("i.weight", ("I32", (2, 2), np.arange(4, dtype=np.int32).tobytes()))])
    proc = run(prune_bin, "prune", ints, out, "--sparsity", 0.5, check=False)
    assert proc.returncode == 1 and "i.weight" in proc.stderr and "I32" in proc.stderr and not out.exists()
    proc = run(prune_bin, "prune", src, out, "--sparsity", 0.5, "--only", "nothing*", check=False)
    assert proc.returncode == 1 and "no tensor is selected" in proc.stderr and not out.exists()
    for bad in (["--sparsity", "1"], ["--sparsity", "-0.1"], ["--keep", "0"], ["--pattern", "4:4"], ["--pattern", "2:4", "--scope", "row"],
                ["--sparsity", "0.5", "--keep", "0.5"], []):
        proc = run(prune_bin, "prune", src, out, *bad, check=False)
        assert proc.returncode != 0 and not out.exists(), bad
