"""GGUF -> Hugging Face folder: transformers loads what `scalpel convert model.gguf OUT_FOLDER` writes, and
gives the same outputs as the original model (within 1e-4 relative for F32; within the quantization error
for Q8_0).

The GGUFs come from Scalpel's HF -> GGUF path (itself compared byte for byte with llama.cpp's converter in
test_hf_convert_*.py): a tiny Llama with GQA (Q/K permutation undone), a tiny Qwen2 (biases), and the real
all-MiniLM-L6-v2 (WordPiece vocab.txt rebuilt: the same token ids as the original tokenizer).
"""
import json
from pathlib import Path

import pytest

from hf_convert_oracle import require_ml
from test_hf_convert_bert import minilm  # noqa: F401 (fixture)
from test_hf_convert_llama import make_llama
from test_hf_convert_qwen import make as make_qwen


def rel(a, b):
    return float((a - b).abs().max() / a.abs().max())


@pytest.mark.parametrize("family,dtype,tol", [("llama", "f32", 1e-4), ("llama", "q8_0", 5e-2), ("qwen2", "f32", 1e-4)])
def test_causal_lm_round_trip(scalpel, tmp, family, dtype, tol):
    require_ml()
    import torch
    from transformers import AutoModelForCausalLM
    folder = make_llama(tmp / "model") if family == "llama" else make_qwen(tmp / "model", "qwen2")
    gguf = scalpel.convert(folder, tmp / "m.gguf", "--dtype", dtype)
    back = tmp / "back"
    proc = scalpel.run("convert", gguf, back)
    assert "tokenizer is not rebuilt" in proc.stdout + proc.stderr
    config = json.loads((back / "config.json").read_text())
    assert config["architectures"] == [json.loads((folder / "config.json").read_text())["architectures"][0]]
    a = AutoModelForCausalLM.from_pretrained(folder).eval()
    b = AutoModelForCausalLM.from_pretrained(back).eval()
    ids = torch.tensor([[1, 5, 77, 300, 12, 499, 3, 250]])
    with torch.no_grad():
        assert rel(a(ids).logits, b(ids).logits) <= tol


def test_bert_round_trip_with_tokenizer(scalpel, minilm, tmp):  # noqa: F811
    require_ml()
    import torch
    from transformers import AutoModel, AutoTokenizer
    src = minilm
    gguf = scalpel.convert(src, tmp / "m.gguf", "--dtype", "f32")
    back = tmp / "back"
    scalpel.run("convert", gguf, back)
    ta, tb = AutoTokenizer.from_pretrained(src), AutoTokenizer.from_pretrained(back)
    text = "A surgeon's scalpel cuts checkpoints, naïvely: ##x [MASK] 1234! Übergrößenträger"
    assert ta(text)["input_ids"] == tb(text)["input_ids"]
    a, b = AutoModel.from_pretrained(src).eval(), AutoModel.from_pretrained(back).eval()
    x = ta(text, return_tensors="pt")
    with torch.no_grad():
        assert rel(a(**x).last_hidden_state, b(**x).last_hidden_state) <= 1e-4
