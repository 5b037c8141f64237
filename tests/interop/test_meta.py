"""scalpel meta: listing and --get; --set/--type/--set-from-file/--delete on GGUF read back by gguf-py
with the right types; safetensors __metadata__; --in-place only when the header keeps its size, else
refused with the file byte-identical."""
import json

import gguf
import numpy as np
import pytest
from safetensors import safe_open
from safetensors.numpy import save_file

T = gguf.GGUFValueType


def make_gguf(path, extra=()):
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name("tiny")
    w.add_uint32("test.count", 7)
    w.add_string("test.note", "hello")
    for k, v in extra:
        w.add_string(k, v)
    rng = np.random.default_rng(0)
    w.add_tensor("blk.0.attn_q.weight", rng.standard_normal((32, 64)).astype(np.float32))
    w.add_tensor("output_norm.weight", np.ones(64, np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def field(reader, key):
    f = reader.fields[key]
    return f.types, f.contents()


def test_set_string_int_array_and_chat_template(scalpel, tmp):
    src = make_gguf(tmp / "m.gguf")
    template = "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}</s>\n{% endfor %}"
    (tmp / "t.jinja").write_text(template)
    out = tmp / "out.gguf"
    scalpel.run("meta", src, "-o", out, "--set", "general.name=renamed", "--set", "test.ids=[1, -2, 300]",
                "--type", "test.ids=array[i32]", "--set-from-file", f"tokenizer.chat_template={tmp / 't.jinja'}",
                "--set", "test.count=9", "--set", "test.ratio=0.5", "--set", "test.flag=true",
                "--set", "test.big=[1, 2]", "--type", "test.big=array[u64]", "--delete", "test.note")
    r = gguf.GGUFReader(out)
    assert field(r, "general.name") == ([T.STRING], "renamed")
    assert field(r, "test.ids") == ([T.ARRAY, T.INT32], [1, -2, 300])
    assert field(r, "tokenizer.chat_template") == ([T.STRING], template)
    assert field(r, "test.count") == ([T.UINT32], 9)  # keeps its type
    types, v = field(r, "test.ratio")
    assert types == [T.FLOAT32] and v == pytest.approx(0.5)
    assert field(r, "test.flag") == ([T.BOOL], True)
    assert field(r, "test.big") == ([T.ARRAY, T.UINT64], [1, 2])
    assert "test.note" not in r.fields
    src_r = gguf.GGUFReader(src)
    for a, b in zip(src_r.tensors, r.tensors):
        assert a.name == b.name
        np.testing.assert_array_equal(a.data, b.data)


def test_list_and_get(scalpel, tmp):
    src = make_gguf(tmp / "m.gguf")
    listing = json.loads(scalpel.run("meta", src, "--json").stdout)
    assert listing["metadata"]["test.count"] == 7 and listing["types"]["test.count"] == "u32"
    assert scalpel.run("meta", src, "--get", "test.note").stdout == "hello\n"
    text = scalpel.run("meta", src).stdout
    assert "test.count" in text and "u32" in text
    p = scalpel.run("meta", src, "--get", "missing.key", check=False)
    assert p.returncode == 1 and "missing.key" in p.stderr


@pytest.mark.parametrize("args,why", [
    (["--set", "test.count=-1"], "u32"),
    (["--set", "x=1", "--type", "x=array[i32]"], "JSON array"),
    (["--delete", "no.such"], "no.such"),
    (["--set", "test.note=1", "--delete", "test.note"], "both"),
])
def test_bad_edits_refused(scalpel, tmp, args, why):
    src = make_gguf(tmp / "m.gguf")
    out = tmp / "out.gguf"
    p = scalpel.run("meta", src, "-o", out, *args, check=False)
    assert p.returncode == 1 and why in p.stderr and not out.exists()


def test_in_place_gguf_fits_in_padding(scalpel, tmp):
    src = make_gguf(tmp / "m.gguf")
    before = src.read_bytes()
    scalpel.run("meta", src, "--in-place", "--set", "test.note=HELLO")  # same length
    after = src.read_bytes()
    assert len(after) == len(before)
    r = gguf.GGUFReader(src)
    assert field(r, "test.note") == ([T.STRING], "HELLO")
    data_start = r.tensors[0].data_offset
    assert after[data_start:] == before[data_start:]


def test_in_place_refuses_when_header_size_changes(scalpel, tmp):
    src = make_gguf(tmp / "m.gguf")
    before = src.read_bytes()
    p = scalpel.run("meta", src, "--in-place", "--set", "test.note=" + "x" * 500, check=False)
    assert p.returncode == 1 and "cannot edit in place" in p.stderr and "-o OUT" in p.stderr
    assert src.read_bytes() == before
    p = scalpel.run("meta", src, "--in-place", "--delete", "test.note", "--delete", "test.count", check=False)
    assert p.returncode == 1 and src.read_bytes() == before


def test_safetensors_metadata(scalpel, tmp):
    src = tmp / "m.safetensors"
    save_file({"w": np.arange(6, dtype=np.float32).reshape(2, 3)}, src, metadata={"format": "pt", "note": "abcdefgh"})
    out = tmp / "o.safetensors"
    scalpel.run("meta", src, "-o", out, "--set", "owner=me", "--delete", "note")
    with safe_open(out, "numpy") as f:
        assert f.metadata() == {"format": "pt", "owner": "me"}
        np.testing.assert_array_equal(f.get_tensor("w"), np.arange(6, dtype=np.float32).reshape(2, 3))
    # In place: shorter JSON is padded with spaces; longer is refused.
    size = src.stat().st_size
    scalpel.run("meta", src, "--in-place", "--set", "note=abc")
    with safe_open(src, "numpy") as f:
        assert f.metadata() == {"format": "pt", "note": "abc"}
        np.testing.assert_array_equal(f.get_tensor("w"), np.arange(6, dtype=np.float32).reshape(2, 3))
    assert src.stat().st_size == size
    before = src.read_bytes()
    p = scalpel.run("meta", src, "--in-place", "--set", "note=" + "y" * 200, check=False)
    assert p.returncode == 1 and "grow" in p.stderr and src.read_bytes() == before
    p = scalpel.run("meta", src, "-o", out, "--set", "n=1", "--type", "n=u32", check=False)
    assert p.returncode == 1 and "strings only" in p.stderr
