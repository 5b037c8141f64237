"""scalpel diff: per-tensor change figures checked against NumPy, planted low-rank spectra, a model
against itself, and a model against its Q8_0 round trip (error equal to quantize's own report)."""
import json

import numpy as np
import pytest
from safetensors.numpy import save_file


def diff(scalpel, a, b, *flags):
    return json.loads(scalpel.run("diff", a, b, "--json", *flags).stdout)


def by_name(report):
    return {t["name"]: t for t in report["tensors"]}


def test_figures_match_numpy(scalpel, tmp):
    rng = np.random.default_rng(1)
    a = {"x.weight": rng.standard_normal((64, 48)).astype(np.float32),
         "y.bias": rng.standard_normal(48).astype(np.float32),
         "gone.weight": np.ones((4, 4), np.float32),
         "reshaped.weight": np.zeros((8, 4), np.float32)}
    b = {"x.weight": (a["x.weight"] + 0.05 * rng.standard_normal((64, 48))).astype(np.float32),
         "y.bias": a["y.bias"].astype(np.float16),
         "new.weight": np.ones((2, 2), np.float32),
         "reshaped.weight": np.zeros((4, 8), np.float32)}
    save_file(a, tmp / "a.safetensors")
    save_file(b, tmp / "b.safetensors")
    r = diff(scalpel, tmp / "a.safetensors", tmp / "b.safetensors")
    t = by_name(r)
    assert set(t) == {"x.weight", "y.bias"}
    for name in t:
        x = a[name].astype(np.float64).ravel()
        y = b[name].astype(np.float32).astype(np.float64).ravel()
        assert t[name]["relative_change"] == pytest.approx(np.linalg.norm(y - x) / np.linalg.norm(x), rel=1e-6)
        assert t[name]["cosine"] == pytest.approx(x @ y / np.linalg.norm(x) / np.linalg.norm(y), rel=1e-9)
        assert t[name]["max_abs_diff"] == pytest.approx(np.abs(y - x).max(), rel=1e-6)
    assert t["y.bias"]["dtype_a"] == "F32" and t["y.bias"]["dtype_b"] == "F16"
    assert r["only_in_a"] == ["gone.weight"] and r["only_in_b"] == ["new.weight"]
    assert r["shape_changes"] == [{"name": "reshaped.weight", "shape_a": [8, 4], "shape_b": [4, 8],
                                   "dtype_a": "F32", "dtype_b": "F32"}]
    tot = r["totals"]
    assert tot["tensors_compared"] == 2 and tot["dtype_changes"] == 1 and tot["only_in_a"] == 1
    num = sum(np.sum((b[n].astype(np.float64) - a[n].astype(np.float64)) ** 2) for n in t)
    den = sum(np.sum(a[n].astype(np.float64) ** 2) for n in t)
    assert tot["relative_change"] == pytest.approx(np.sqrt(num / den), rel=1e-6)


def planted(rng, m, n, rank, noise):
    u, _ = np.linalg.qr(rng.standard_normal((m, rank)))
    v, _ = np.linalg.qr(rng.standard_normal((n, rank)))
    delta = u @ v.T  # equal singular values 1: each direction holds 1/rank of the planted energy
    return (delta + noise * rng.standard_normal((m, n)) * np.sqrt(rank / (m * n))).astype(np.float32)


@pytest.mark.parametrize("ranks", [(5, 12, 40), (3, 24, 100)])
def test_rank_profile_reports_planted_ranks(scalpel, tmp, ranks):
    rng = np.random.default_rng(7)
    base, tuned, shapes = {}, {}, [(256, 192), (192, 320), (300, 256)]
    for i, (r, (m, n)) in enumerate(zip(ranks, shapes)):
        w = rng.standard_normal((m, n)).astype(np.float32)
        base[f"l{i}.weight"] = w
        tuned[f"l{i}.weight"] = w + planted(rng, m, n, r, noise=0.05)  # noise energy 0.25% of the planted
    save_file(base, tmp / "base.safetensors")
    save_file(tuned, tmp / "tuned.safetensors")
    r = diff(scalpel, tmp / "base.safetensors", tmp / "tuned.safetensors", "--rank-profile", "--energy", "0.993")
    t = by_name(r)
    for i, rank in enumerate(ranks):
        p = t[f"l{i}.weight"]
        # The planted directions hold 99.75% of the energy, rank-1 of them at most 99/100 of that (98.8%):
        # 99.3% needs every planted direction, and no more.
        assert p["rank_for_energy"] == rank
        delta = (tuned[f"l{i}.weight"] - base[f"l{i}.weight"]).astype(np.float64)
        s = np.linalg.svd(delta, compute_uv=False)
        exact = np.cumsum(s ** 2) / np.sum(s ** 2)
        assert set(p["energy_at_rank"]) == {"8", "16", "32", "64", "128"}
        for k, frac in p["energy_at_rank"].items():
            assert frac == pytest.approx(exact[min(int(k), len(s)) - 1], abs=2e-3)
    tot = r["totals"]
    assert tot["lora_rank"] in (8, 16, 32, 64, 128)
    assert tot["summary"].startswith(f"a LoRA of rank {tot['lora_rank']} captures ")
    text = scalpel.run("diff", tmp / "base.safetensors", tmp / "tuned.safetensors", "--rank-profile").stdout
    assert "a LoRA of rank" in text and "of the fine-tune" in text


def test_model_against_itself_is_zero(scalpel, model_path):
    r = diff(scalpel, model_path, model_path, "--rank-profile")
    assert r["only_in_a"] == [] and r["only_in_b"] == [] and r["shape_changes"] == []
    assert len(r["tensors"]) == 104
    for t in r["tensors"]:
        assert t["relative_change"] == 0 and t["max_abs_diff"] == 0 and t["cosine"] == pytest.approx(1, abs=1e-12)
        if "rank_for_energy" in t:
            assert t["rank_for_energy"] == 0
    assert r["totals"]["tensors_changed"] == 0 and r["totals"]["relative_change"] == 0


@pytest.mark.parametrize("qtype,out_name,stored", [("q8_0", "q.gguf", "Q8_0"), ("nf4", "q.safetensors", "NF4"),
                                                   ("int4", "q.safetensors", "INT4")])
def test_round_trip_error_equals_quantize_report(scalpel, tmp, model_path, qtype, out_name, stored):
    out = tmp / out_name
    rep = json.loads(scalpel.run("quantize", model_path, out, "--type", qtype, "--json").stdout)
    r = diff(scalpel, model_path, out)
    t = by_name(r)
    assert r["only_in_a"] == [] and r["only_in_b"] == []  # side tensors (absmax, scales...) fold into their weight
    quantized = [e for e in rep["tensors"] if e["to"] == stored]
    assert len(quantized) == 37
    for e in quantized:
        d = t[e["name"]]
        assert d["dtype_a"] == "F32" and d["dtype_b"] == stored
        if qtype == "q8_0":
            assert d["relative_change"] == e["relative_rmse"]  # same kernel, same figure
        else:  # the writers sum the error over their own chunking (rows, groups of blocks)
            assert d["relative_change"] == pytest.approx(e["relative_rmse"], rel=1e-9)
    kept = [e for e in rep["tensors"] if e["to"] == "F32"]
    assert kept and all(t[e["name"]]["relative_change"] == 0 for e in kept)
    assert r["totals"]["dtype_changes"] == 37


def test_missing_input_is_one_line_error(scalpel, tmp, model_path):
    p = scalpel.run("diff", model_path, tmp / "nope.safetensors", check=False)
    assert p.returncode == 1 and p.stderr.startswith("scalpel: error: ") and p.stderr.count("\n") == 1
