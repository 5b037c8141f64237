"""Typed metadata across formats: GGUF -> safetensors -> GGUF keeps every key's type and value.

The GGUF is written by gguf-py with one key of each GGUF value type (arrays of each element type too);
after the round trip gguf-py reads the same keys, types and values back. The safetensors in the middle
holds readable strings plus `scalpel.metadata_types` (docs/convert.md).
"""
import json
import math
import struct

import numpy as np
import pytest

gguf = pytest.importorskip("gguf")

T = gguf.GGUFValueType

KEYS = [
    ("general.architecture", "llama", T.STRING),
    ("llama.context_length", 2048, T.UINT32),
    ("llama.rope.freq_base", 10000.0, T.FLOAT32),
    ("llama.attention.layer_norm_rms_epsilon", 1e-5, T.FLOAT32),
    ("test.u8", 200, T.UINT8),
    ("test.i8", -100, T.INT8),
    ("test.u16", 60000, T.UINT16),
    ("test.i16", -30000, T.INT16),
    ("test.i32", -2_000_000_000, T.INT32),
    ("test.u64", 2**63 + 5, T.UINT64),
    ("test.i64", -(2**62), T.INT64),
    ("test.f64", 0.1, T.FLOAT64),
    ("test.bool", True, T.BOOL),
    ("test.nan", float("nan"), T.FLOAT32),
    ("test.str_that_looks_like_int", "42", T.STRING),
    ("test.empty", "", T.STRING),
    ("tokenizer.ggml.tokens", ["<s>", "</s>", "\"quoted\"", "multi\nline", "é", "[1,2]"], T.ARRAY),
    ("tokenizer.ggml.scores", [0.0, -1.5, 3.25e-7, float("-inf")], T.ARRAY),
    ("tokenizer.ggml.token_type", [1, 3, 3, 1, 1, 6], T.ARRAY),
    ("test.bools", [True, False], T.ARRAY),
    ("test.u64s", [0, 2**64 - 1], T.ARRAY),
]
ARRAY_TYPES = {"tokenizer.ggml.scores": T.FLOAT32, "tokenizer.ggml.token_type": T.INT32, "test.bools": T.BOOL,
               "test.u64s": T.UINT64}


def write_gguf(path):
    w = gguf.GGUFWriter(str(path), arch="llama")
    for key, value, vtype in KEYS:
        if key == "general.architecture":
            continue
        if vtype == T.ARRAY:
            sub = ARRAY_TYPES.get(key)
            if sub is None:
                w.add_array(key, value)
            else:
                w.add_key_value(key, value, T.ARRAY, sub_type=sub)
        else:
            w.add_key_value(key, value, vtype)
    w.add_tensor("token_embd.weight", np.arange(32, dtype=np.float32).reshape(4, 8))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def read_fields(path):
    r = gguf.GGUFReader(str(path))
    out = {}
    for name, f in r.fields.items():
        if name.startswith("GGUF."):
            continue
        types = [int(t) for t in f.types]
        out[name] = (types, f.contents())
    return out


def same(a, b):
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and math.isnan(a):
        return isinstance(b, float) and math.isnan(b)
    if isinstance(a, float):
        return struct.pack("<f", a) == struct.pack("<f", b) or a == b
    return a == b


def test_gguf_safetensors_gguf_keeps_types(scalpel, tmp):
    src = tmp / "in.gguf"
    write_gguf(src)
    mid = scalpel.convert(src, tmp / "mid.safetensors")
    back = scalpel.convert(mid, tmp / "back.gguf")
    a, b = read_fields(src), read_fields(back)
    for key in a:
        if key == "general.alignment":
            continue
        assert key in b, f"{key} lost"
        assert a[key][0] == b[key][0], f"{key}: types {a[key][0]} -> {b[key][0]}"
        assert same(a[key][1], b[key][1]), f"{key}: {a[key][1]!r} -> {b[key][1]!r}"
    # The safetensors in the middle: readable strings, and the types key.
    n = struct.unpack("<Q", mid.read_bytes()[:8])[0]
    meta = json.loads(mid.read_bytes()[8:8 + n])["__metadata__"]
    assert meta["llama.context_length"] == "2048"
    assert meta["test.str_that_looks_like_int"] == "42"
    assert json.loads(meta["tokenizer.ggml.tokens"]) == KEYS[16][1]
    types = json.loads(meta["scalpel.metadata_types"])
    assert types["llama.context_length"] == "u32"
    assert types["tokenizer.ggml.tokens"] == "arr[str]"
    assert types["tokenizer.ggml.scores"] == "arr[f32]"
    assert "test.str_that_looks_like_int" not in types
    # safetensors itself reads it (metadata must stay str -> str)
    from safetensors import safe_open
    with safe_open(str(mid), "np") as f:
        assert f.metadata()["test.u64"] == str(2**63 + 5)


def test_plain_string_metadata_unchanged(scalpel, tmp):
    """A safetensors file whose metadata is all strings gains no types key."""
    from safetensors.numpy import save_file
    src = tmp / "a.safetensors"
    save_file({"w": np.ones((2, 2), np.float32)}, str(src), metadata={"format": "pt", "n": "3"})
    out = scalpel.convert(src, tmp / "b.safetensors")
    n = struct.unpack("<Q", out.read_bytes()[:8])[0]
    assert json.loads(out.read_bytes()[8:8 + n])["__metadata__"] == {"format": "pt", "n": "3"}


def test_bad_typed_value_is_refused(scalpel, tmp):
    from safetensors.numpy import save_file
    src = tmp / "bad.safetensors"
    save_file({"w": np.ones((2,), np.float32)}, str(src),
              metadata={"k": "12x", "scalpel.metadata_types": json.dumps({"k": "u32"})})
    proc = scalpel.run("inspect", src, check=False)
    assert proc.returncode == 1
    assert "k: '12x' is not a u32" in proc.stderr
