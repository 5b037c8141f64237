"""Byte-level BPE models -> GGUF: Qwen2, Qwen3 and a Llama-3-style Llama, checked against llama.cpp's
convert_hf_to_gguf.py.

Tiny models from transformers (seeded) with a byte-level BPE tokenizer trained here by `tokenizers` with
the pre-tokenizer of the real model family (Qwen2's or Llama 3's Split regex + ByteLevel). The reference
names the pre-tokenizer by hashing the ids of a test text, which a freshly trained vocabulary cannot match,
so its get_vocab_base_pre() is patched to return the family's name (`qwen2`, `llama-bpe`); Scalpel derives
the same name from tokenizer.json, and everything else (tensors, merges, tokens, special ids...) must be equal.
"""
import glob
from pathlib import Path

import pytest

from hf_convert_oracle import compare_gguf, reference_convert, require_ml

REPO = Path(__file__).resolve().parents[2]
QWEN2_REGEX = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
LLAMA3_REGEX = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"


def train_bpe(regex, specials, vocab_size=600):
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(regex), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    texts = [Path(p).read_text(errors="ignore") for p in sorted(glob.glob(str(REPO / "docs" / "*.md"))) if Path(p).is_file()]
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts + [(REPO / "README.md").read_text()], trainer)
    return tok


def make(folder: Path, family: str):
    import torch
    from transformers import PreTrainedTokenizerFast
    folder.mkdir(parents=True)
    torch.manual_seed(0)
    kw = dict(vocab_size=640, hidden_size=64, intermediate_size=160, num_hidden_layers=2, num_attention_heads=4,
              num_key_value_heads=2, max_position_embeddings=256, rms_norm_eps=1e-6)
    if family == "llama3":
        from transformers import LlamaConfig, LlamaForCausalLM
        tok = train_bpe(LLAMA3_REGEX, ["<|begin_of_text|>", "<|end_of_text|>"])
        model = LlamaForCausalLM(LlamaConfig(**kw, bos_token_id=tok.token_to_id("<|begin_of_text|>"),
                                             eos_token_id=tok.token_to_id("<|end_of_text|>"), rope_theta=500000.0))
        fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|begin_of_text|>", eos_token="<|end_of_text|>")
    else:
        from transformers import Qwen2Config, Qwen2ForCausalLM, Qwen3Config, Qwen3ForCausalLM
        tok = train_bpe(QWEN2_REGEX, ["<|endoftext|>", "<|im_start|>", "<|im_end|>"])
        cfg = dict(kw, eos_token_id=tok.token_to_id("<|im_end|>"), tie_word_embeddings=family == "qwen3")
        model = Qwen3ForCausalLM(Qwen3Config(**cfg, head_dim=16)) if family == "qwen3" else Qwen2ForCausalLM(Qwen2Config(**cfg))
        fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>")
        fast.chat_template = "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    model.save_pretrained(folder)
    fast.save_pretrained(folder)
    return folder


@pytest.mark.parametrize("family,pre,outtype", [("qwen2", "qwen2", "f32"), ("qwen3", "qwen2", "bf16"),
                                                ("llama3", "llama-bpe", "f16")])
def test_bpe_model_same_as_reference(scalpel, tmp, family, pre, outtype):
    require_ml()
    folder = make(tmp / family, family)
    ref = reference_convert(folder, tmp / "ref.gguf", outtype, pre_name=pre)
    ours = scalpel.convert(folder, tmp / "ours.gguf", "--dtype", outtype)
    compare_gguf(ref, ours)
