"""Hugging Face Llama/Mistral folders -> GGUF, checked against llama.cpp's convert_hf_to_gguf.py.

A tiny Llama is made here: seeded weights from transformers (hidden 64, 2 layers, 4 heads, 2 KV heads so
that the K permutation uses the KV head count), a SentencePiece BPE tokenizer (512 pieces, byte fallback)
trained here on the repository's docs, saved by transformers 4.57 (tokenizer.model). Both converters'
files have the same tensors and metadata; llama-simple's greedy tokens are the same when it is built.
"""
import glob
import os
from pathlib import Path

import pytest

from hf_convert_oracle import compare_gguf, greedy_outputs, reference_convert, require_ml

REPO = Path(__file__).resolve().parents[2]


def make_llama(folder: Path, tied=False, arch="llama", safe=True):
    import sentencepiece as spm
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, LlamaTokenizer, MistralConfig, MistralForCausalLM
    folder.mkdir(parents=True)
    corpus = folder.parent / f"{folder.name}-corpus.txt"
    texts = [Path(p).read_text(errors="ignore") for p in sorted(glob.glob(str(REPO / "docs" / "*.md"))) if Path(p).is_file()]
    corpus.write_text("\n".join(texts + [(REPO / "README.md").read_text()]))
    prefix = str(folder.parent / f"{folder.name}-sp")
    spm.SentencePieceTrainer.train(input=str(corpus), model_prefix=prefix, vocab_size=512, model_type="bpe",
                                   byte_fallback=True, character_coverage=1.0, num_threads=1, minloglevel=2)
    tok = LlamaTokenizer(vocab_file=prefix + ".model", legacy=False)
    torch.manual_seed(0)
    kw = dict(vocab_size=512, hidden_size=64, intermediate_size=160, num_hidden_layers=2, num_attention_heads=4,
              num_key_value_heads=2, max_position_embeddings=256, tie_word_embeddings=tied, rms_norm_eps=1e-5)
    model = MistralForCausalLM(MistralConfig(**kw)) if arch == "mistral" else LlamaForCausalLM(LlamaConfig(**kw))
    model.save_pretrained(folder, safe_serialization=safe)
    tok.save_pretrained(folder)
    return folder


@pytest.mark.parametrize("variant", ["untied-f32", "tied-f16", "bin-bf16", "mistral-q8_0"])
def test_tiny_llama_same_as_reference(scalpel, tmp, variant):
    require_ml()
    kind, outtype = variant.split("-")
    folder = make_llama(tmp / "model", tied=kind == "tied", arch="mistral" if kind == "mistral" else "llama",
                        safe=kind != "bin")
    ref = reference_convert(folder, tmp / "ref.gguf", outtype)
    ours = scalpel.convert(folder, tmp / "ours.gguf", "--dtype", outtype)
    n_tensors, _ = compare_gguf(ref, ours)
    assert n_tensors == (20 if kind == "tied" else 21)


def test_greedy_tokens_equal_in_llama_cpp(scalpel, tmp):
    require_ml()
    folder = make_llama(tmp / "model")
    ref = reference_convert(folder, tmp / "ref.gguf", "f32")
    ours = scalpel.convert(folder, tmp / "ours.gguf", "--dtype", "f32")
    outs = greedy_outputs([ref, ours], 24)
    assert outs[0] == outs[1] and outs[0].strip()


def test_bpe_llama_without_tokenizer_model_is_refused(scalpel, tmp):
    require_ml()
    folder = make_llama(tmp / "model")
    os.remove(folder / "tokenizer.model")
    proc = scalpel.run("convert", folder, tmp / "out.gguf", check=False)
    assert proc.returncode == 1 and "no tokenizer.model" in proc.stderr, proc.stderr
    assert not (tmp / "out.gguf").exists()
