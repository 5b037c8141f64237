"""`scalpel convert`: files it writes load unchanged in safetensors and gguf-py, casts are bit-exact."""
import json
import shutil
import subprocess

import gguf
import numpy as np
import pytest
from safetensors import safe_open
from safetensors.numpy import load_file, save_file

from helpers import (NUMPY_TO_ST, bf16_bits_to_f32, f32_to_bf16_bits, gguf_metadata, gguf_tensors, random_f32_bit_patterns,
                     read_safetensors_raw, write_safetensors_raw)

Q = gguf.GGMLQuantizationType
RNG = np.random.default_rng(1234)


def mixed_tensors():
    return {
        "model.layers.0.mlp.up_proj.weight": RNG.standard_normal((32, 16)).astype(np.float32),
        "model.layers.0.mlp.up_proj.bias": RNG.standard_normal(32).astype(np.float32),
        "model.embed.weight": RNG.standard_normal((50, 16)).astype(np.float16),
        "model.norm.weight": RNG.standard_normal(16),  # F64
        "position_ids": np.arange(64, dtype=np.int64).reshape(1, 64),
        "mask": RNG.random(9) > 0.5,
        "codes": RNG.integers(0, 255, (3, 3), dtype=np.uint8),
        "counts": RNG.integers(-5, 5, (7,), dtype=np.int32),
        "scalar": np.array(2.5, dtype=np.float32),
        "empty": np.zeros((0, 3), dtype=np.float32),
    }


def assert_same_arrays(got, expected):
    assert sorted(got) == sorted(expected)
    for name, array in expected.items():
        assert got[name].dtype == array.dtype, name
        assert got[name].shape == array.shape, name
        assert got[name].tobytes() == array.tobytes(), name


def only_entries(folder):
    return sorted(p.name for p in folder.iterdir())


# ---------------------------------------------------------------------------------------------- safetensors

@pytest.mark.parametrize("metadata", [None, {"format": "pt"}], ids=["no-metadata", "format-pt"])
def test_copy_is_byte_identical_to_reference_writer(scalpel, tmp, metadata):
    tensors = mixed_tensors()
    reference = tmp / "reference.safetensors"
    save_file(tensors, str(reference), metadata=metadata)
    # The same tensors in another order with a wider header padding: the output must not depend on it.
    scrambled = write_safetensors_raw(
        tmp / "scrambled.safetensors",
        [(n, NUMPY_TO_ST[a.dtype], list(a.shape), a.tobytes())
         for n, a in reversed(list(tensors.items()))],
        metadata=metadata, pad_to=32)
    for src in (reference, scrambled):
        out = scalpel.convert(src, tmp / f"out-{src.stem}.safetensors")
        assert out.read_bytes() == reference.read_bytes(), f"convert {src.name} differs from save_file output"


def test_copy_loads_in_reference_library(scalpel, tmp):
    tensors = mixed_tensors()
    src = tmp / "in.safetensors"
    save_file(tensors, str(src), metadata={"format": "pt"})
    out = scalpel.convert(src, tmp / "out.safetensors")
    assert_same_arrays(load_file(str(out)), tensors)
    with safe_open(str(out), framework="numpy") as f:
        assert f.metadata() == {"format": "pt"}
    assert only_entries(tmp) == ["in.safetensors", "out.safetensors"]  # no temporary files left


def test_cast_f32_to_f16_bit_identical_to_numpy(scalpel, tmp):
    special = np.array([
        0.0, -0.0, 1.0, -1.0, 65504.0, 65519.99, 65520.0, -65520.0, 1e6, -1e6, np.inf, -np.inf,
        6.0e-8, 5.96e-8, 2.98e-8, 2.9802322e-8, 2.99e-8, 1e-10, -1e-10, 6.1e-5, 6.09e-5, 1e-40, -1e-45,
        1 + 2**-11, 1 + 3 * 2**-11, 2048 + 1, 2048 + 3, np.nan, -np.nan,
    ], dtype=np.float32)
    payload_nans = np.array([0x7FC12345, 0xFFC00001, 0x7FFFFFFF, 0x7FC02000], dtype=np.uint32).view(np.float32)
    x = np.concatenate([special, payload_nans, random_f32_bit_patterns(200_000, RNG),
                        (RNG.standard_normal(100_000) * 1e-5).astype(np.float32)])
    other = np.arange(10, dtype=np.int64)
    src = tmp / "f32.safetensors"
    save_file({"x": x, "ids": other}, str(src))
    out = scalpel.convert(src, tmp / "f16.safetensors", "--dtype", "f16")
    got = load_file(str(out))
    assert got["x"].dtype == np.float16
    with np.errstate(over="ignore"):
        expected = x.astype(np.float16).view(np.uint16)
    mismatch = np.nonzero(got["x"].view(np.uint16) != expected)[0]
    assert mismatch.size == 0, (
        f"{mismatch.size} values differ, first: " + ", ".join(
            f"{x.view(np.uint32)[i]:#010x} -> {got['x'].view(np.uint16)[i]:#06x} (numpy {expected[i]:#06x})"
            for i in mismatch[:5]))
    assert got["ids"].dtype == np.int64 and np.array_equal(got["ids"], other)


def test_cast_f32_signaling_nan_to_f16_matches_numpy(scalpel, tmp):
    """numpy keeps a signaling NaN's payload bits (0x7f800001 -> 0x7c01); hardware F16C would quiet it, so
    Scalpel redoes NaN lanes in software."""
    x = np.array([0x7F800001, 0xFF800001, 0x7FA00000, 0x7F802000], dtype=np.uint32).view(np.float32)
    src = tmp / "snan.safetensors"
    save_file({"x": x}, str(src))
    got = load_file(str(scalpel.convert(src, tmp / "out.safetensors", "--dtype", "f16")))["x"]
    assert [hex(v) for v in got.view(np.uint16)] == [hex(v) for v in x.astype(np.float16).view(np.uint16)]


def test_cast_f32_to_bf16_bit_identical_to_gguf(scalpel, tmp):
    special = np.array([0.0, -0.0, 1.0, 3.4028235e38, -3.4028235e38, 3.3961776e38, np.inf, -np.inf, np.nan,
                        1e-40, -1e-40, 1.4e-45, 1 + 2**-8, 1 + 3 * 2**-8], dtype=np.float32)
    nans = np.array([0x7F800001, 0xFF800001, 0x7FC12345, 0x7FFFFFFF], dtype=np.uint32).view(np.float32)
    x = np.concatenate([special, nans, random_f32_bit_patterns(200_000, RNG, quiet_nans_only=False)])
    src = tmp / "f32.safetensors"
    save_file({"x": x.reshape(-1, 2)}, str(src))
    out = scalpel.convert(src, tmp / "bf16.safetensors", "--dtype", "bf16")
    with safe_open(str(out), framework="numpy") as f:  # the reference library accepts the header
        assert list(f.keys()) == ["x"]
    dtype, shape, raw = read_safetensors_raw(out)["x"]
    assert dtype == "BF16" and shape == [x.size // 2, 2]
    got = np.frombuffer(raw, dtype=np.uint16)
    expected = f32_to_bf16_bits(x)
    mismatch = np.nonzero(got != expected)[0]
    assert mismatch.size == 0, (
        f"{mismatch.size} values differ, first: " + ", ".join(
            f"{x.view(np.uint32)[i]:#010x} -> {got[i]:#06x} (gguf {expected[i]:#06x})" for i in mismatch[:5]))


def test_upcast_f16_and_bf16_to_f32_exact(scalpel, tmp):
    f16_bits = RNG.integers(0, 2**16, 50_000, dtype=np.uint32).astype(np.uint16)
    f16_bits[((f16_bits & 0x7C00) == 0x7C00) & ((f16_bits & 0x3FF) != 0)] |= 0x200  # quiet NaNs only
    bf16 = f32_to_bf16_bits(RNG.standard_normal(1000).astype(np.float32) * 100)
    src = write_safetensors_raw(tmp / "half.safetensors", [
        ("h", "F16", [f16_bits.size], f16_bits.tobytes()),
        ("b", "BF16", [10, 100], bf16.tobytes()),
    ])
    got = load_file(str(scalpel.convert(src, tmp / "f32.safetensors", "--dtype", "f32")))
    assert got["h"].dtype == np.float32 and got["b"].shape == (10, 100)
    assert got["h"].tobytes() == f16_bits.view(np.float16).astype(np.float32).tobytes()
    assert got["b"].ravel().tobytes() == bf16_bits_to_f32(bf16).tobytes()


# ---------------------------------------------------------------------------------------------- GGUF

def test_safetensors_to_gguf_reads_in_gguf_py(scalpel, tmp):
    tensors = {
        "blk.0.attn_q.weight": RNG.standard_normal((64, 32)).astype(np.float32),
        "blk.0.ffn_up.weight": RNG.standard_normal((3, 8, 32)).astype(np.float16),
        "output_norm.weight": RNG.standard_normal(32).astype(np.float32),
        "ids": np.arange(8, dtype=np.int32),
    }
    src = tmp / "in.safetensors"
    save_file(tensors, str(src))
    out = scalpel.convert(src, tmp / "out.gguf", "--arch", "llama")
    reference = gguf_tensors(out)
    assert sorted(reference) == sorted(tensors)
    names = {np.dtype(np.float32): "F32", np.dtype(np.float16): "F16", np.dtype(np.int32): "I32"}
    for name, array in tensors.items():
        qtype, shape, raw, offset = reference[name]
        assert qtype == names[array.dtype], name
        assert shape == list(array.shape), name
        assert raw == array.tobytes(), name
        assert offset % 32 == 0, name
    assert gguf_metadata(out)["general.architecture"] == "llama"
    # And scalpel reads its own output the same way.
    report = scalpel.inspect(out, "--tensors")
    assert report["format"] == "gguf"
    assert {t["name"]: t["shape"] for t in report["tensors"]} == {n: list(a.shape) for n, a in tensors.items()}


def test_safetensors_to_gguf_f16_cast(scalpel, tmp):
    w = RNG.standard_normal((16, 32)).astype(np.float32)
    src = tmp / "in.safetensors"
    save_file({"w": w}, str(src))
    out = scalpel.convert(src, tmp / "out.gguf", "--dtype", "f16", "--arch", "llama")
    qtype, shape, raw, _ = gguf_tensors(out)["w"]
    assert qtype == "F16" and shape == [16, 32]
    assert raw == w.astype(np.float16).tobytes()


def test_safetensors_to_gguf_bf16_cast_matches_gguf_py(scalpel, tmp):
    w = np.concatenate([RNG.standard_normal(1000).astype(np.float32),
                        random_f32_bit_patterns(3000, RNG, quiet_nans_only=False)]).reshape(-1, 8)
    src = tmp / "in.safetensors"
    save_file({"w": w}, str(src))
    out = scalpel.convert(src, tmp / "out.gguf", "--dtype", "bf16", "--arch", "llama")
    qtype, shape, raw, _ = gguf_tensors(out)["w"]
    assert qtype == "BF16" and shape == [500, 8]
    assert raw == f32_to_bf16_bits(w).tobytes()


def write_quantized_gguf(path):
    w = gguf.GGUFWriter(str(path), arch="llama")
    w.add_string("general.name", "quantized")
    w.add_uint32("general.quantization_version", 2)
    w.add_array("test.list", [1, 2, 3])
    values = {
        "q8": (RNG.standard_normal((8, 64)).astype(np.float32), Q.Q8_0),
        "q4": (RNG.standard_normal((4, 96)).astype(np.float32), Q.Q4_0),
        "f16": (RNG.standard_normal((5, 3)).astype(np.float32), Q.F16),
        "f32": (RNG.standard_normal(7).astype(np.float32), Q.F32),
    }
    for name, (x, qtype) in values.items():
        if qtype == Q.F32:
            w.add_tensor(name, x)
        elif qtype == Q.F16:
            w.add_tensor(name, x.astype(np.float16))
        else:
            w.add_tensor(name, gguf.quants.quantize(x, qtype), raw_dtype=qtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def test_gguf_to_gguf_keeps_quantized_blocks(scalpel, tmp):
    src = write_quantized_gguf(tmp / "in.gguf")
    out = scalpel.convert(src, tmp / "out.gguf")
    before, after = gguf_tensors(src), gguf_tensors(out)
    assert list(after) == list(before)
    for name in before:
        assert after[name][:3] == before[name][:3], name
    meta = gguf_metadata(out)
    assert meta["general.architecture"] == "llama"
    assert meta["general.quantization_version"] == 2
    assert meta["test.list"] == [1, 2, 3]


def test_gguf_to_safetensors_dequantizes(scalpel, tmp):
    src = write_quantized_gguf(tmp / "in.gguf")
    out = scalpel.convert(src, tmp / "out.safetensors")
    got = load_file(str(out))
    reader = gguf.GGUFReader(str(src))
    for t in reader.tensors:
        expected = gguf.quants.dequantize(np.asarray(t.data), t.tensor_type)
        assert got[t.name].shape == expected.shape, t.name
        if t.tensor_type == Q.F16:
            assert got[t.name].dtype == np.float16 and got[t.name].tobytes() == np.asarray(t.data).tobytes()
        else:
            assert got[t.name].dtype == np.float32, t.name
            assert np.array_equal(got[t.name], expected.astype(np.float32)), t.name


def test_safetensors_gguf_safetensors_round_trip(scalpel, tmp):
    tensors = {"a.weight": RNG.standard_normal((6, 10)).astype(np.float32),
               "b.weight": RNG.standard_normal((2, 3, 4)).astype(np.float16)}
    src = tmp / "in.safetensors"
    save_file(tensors, str(src))
    mid = scalpel.convert(src, tmp / "mid.gguf", "--arch", "llama")
    back = scalpel.convert(mid, tmp / "back.safetensors")
    assert_same_arrays(load_file(str(back)), tensors)


# ---------------------------------------------------------------------------------------------- shards

def test_sharded_round_trip(scalpel, tmp):
    tensors = {f"model.layers.{i}.w": RNG.standard_normal((100 + 10 * i, 100)).astype(np.float32) for i in range(6)}
    tensors["model.embed.weight"] = RNG.standard_normal((30, 100)).astype(np.float16)
    src = tmp / "model.safetensors"
    save_file(tensors, str(src), metadata={"format": "pt"})
    shard_limit = 100_000
    shards = tmp / "shards"
    scalpel.convert(src, shards, "--shard-size", "100KB")

    index = json.loads((shards / "model.safetensors.index.json").read_text())
    files = sorted(p.name for p in shards.glob("*.safetensors"))
    n = len(files)
    assert n >= 3
    assert files == [f"model-{i:05d}-of-{n:05d}.safetensors" for i in range(1, n + 1)]
    assert only_entries(shards) == sorted(files + ["model.safetensors.index.json"])
    assert sorted(index["weight_map"]) == sorted(tensors)
    assert set(index["weight_map"].values()) == set(files)
    assert index["metadata"]["total_size"] == sum(a.nbytes for a in tensors.values())
    loaded = {}
    for name in files:
        part = load_file(str(shards / name))
        assert all(index["weight_map"][t] == name for t in part)
        part_bytes = sum(a.nbytes for a in part.values())
        assert part_bytes <= shard_limit or len(part) == 1, f"{name} holds {part_bytes} bytes"
        loaded.update(part)
    assert_same_arrays(loaded, tensors)

    report = scalpel.inspect(shards)
    assert report["format"] == "safetensors-sharded"
    assert report["tensor_count"] == len(tensors)
    assert report["parameter_count"] == sum(a.size for a in tensors.values())
    assert report["data_bytes"] == index["metadata"]["total_size"]

    for i, source in enumerate([shards, shards / "model.safetensors.index.json"]):
        back = scalpel.convert(source, tmp / f"back{i}.safetensors")
        assert_same_arrays(load_file(str(back)), tensors)
        assert back.read_bytes() == src.read_bytes(), f"{source.name}: file -> shards -> file is not byte-identical"


def test_everything_in_one_shard_is_a_plain_model_file(scalpel, tmp):
    """As Hugging Face's save_pretrained does: one shard is `model.safetensors` with no index."""
    tensors = {"w": np.ones((4, 4), np.float32)}
    src = tmp / "in.safetensors"
    save_file(tensors, str(src))
    scalpel.convert(src, tmp / "out", "--shard-size", "2GB")
    assert only_entries(tmp / "out") == ["model.safetensors"]
    assert (tmp / "out" / "model.safetensors").read_bytes() == src.read_bytes()
    assert scalpel.inspect(tmp / "out")["tensor_count"] == 1


# ---------------------------------------------------------------------------------------------- zstd

def zstd_decompress(path, dest):
    if shutil.which("zstd") is None:
        pytest.skip("zstd command not installed (make deps installs it)")
    subprocess.run(["zstd", "-q", "-d", "-f", str(path), "-o", str(dest)], check=True)
    return dest


@pytest.mark.parametrize("level", [None, "1", "19"])
def test_zstd_safetensors_round_trip(scalpel, tmp, level):
    tensors = mixed_tensors()
    src = tmp / "in.safetensors"
    save_file(tensors, str(src), metadata={"format": "pt"})
    flags = [] if level is None else ["--zstd-level", level]
    packed = scalpel.convert(src, tmp / "out.safetensors.zst", *flags)
    assert packed.read_bytes()[:4] == b"\x28\xb5\x2f\xfd"
    assert packed.stat().st_size < src.stat().st_size
    plain = zstd_decompress(packed, tmp / "plain.safetensors")
    assert plain.read_bytes() == src.read_bytes()

    report = scalpel.inspect(packed, "--tensors")
    assert report["compressed"] is True
    assert report["format"] == "safetensors"
    assert report["file_bytes"] == packed.stat().st_size
    assert report["tensor_count"] == len(tensors)
    assert {t["name"]: t["shape"] for t in report["tensors"]} == {n: list(a.shape) for n, a in tensors.items()}

    back = scalpel.convert(packed, tmp / "back.safetensors")
    assert back.read_bytes() == src.read_bytes()


def test_zstd_stats_read_the_data(scalpel, tmp):
    x = RNG.standard_normal((64, 64)).astype(np.float32)
    src = tmp / "in.safetensors"
    save_file({"x": x}, str(src))
    packed = scalpel.convert(src, tmp / "in.safetensors.zst")
    scratch = tmp / "scratch"
    scratch.mkdir()
    proc = scalpel.run("inspect", packed, "--stats", "--json", env={"TMPDIR": str(scratch)})
    t = json.loads(proc.stdout)["tensors"][0]
    assert t["min"] == pytest.approx(float(x.min())) and t["max"] == pytest.approx(float(x.max()))
    assert list(scratch.iterdir()) == [], "the decompressed temporary file was left behind"


def test_zstd_gguf_round_trip(scalpel, tmp):
    src = write_quantized_gguf(tmp / "in.gguf")
    packed = scalpel.convert(src, tmp / "out.gguf.zst")
    plain = zstd_decompress(packed, tmp / "plain.gguf")
    before, after = gguf_tensors(src), gguf_tensors(plain)
    assert {n: v[:3] for n, v in after.items()} == {n: v[:3] for n, v in before.items()}
    report = scalpel.inspect(packed)
    assert report["format"] == "gguf" and report["compressed"] is True


# ---------------------------------------------------------------------------------------------- safety

def test_refuses_to_overwrite_its_input(scalpel, tmp):
    src = tmp / "in.safetensors"
    save_file({"w": np.ones(4, np.float32)}, str(src))
    before = src.read_bytes()
    proc = scalpel.run("convert", src, src, check=False)
    assert proc.returncode == 1
    assert proc.stderr.startswith("scalpel: error: ")
    assert src.read_bytes() == before
    assert only_entries(tmp) == ["in.safetensors"]
