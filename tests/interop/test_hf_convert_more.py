"""Gemma 2, Phi-3 and GPT-2 Hugging Face folders -> GGUF, checked against llama.cpp's convert_hf_to_gguf.py,
and back to Hugging Face folders that transformers loads with the same logits.

Tiny models made here by transformers (seeded; norm weights randomized so that Gemma's +1 shift is seen):
- Gemma 2: a SentencePiece tokenizer trained here with Gemma's special ids (pad 0, eos 1, bos 2, unk 3),
  saved by GemmaTokenizer; norms shifted by +1 (RMSNorm's `1 + w`), no lm_head (tied), softcapping and
  sliding-window keys;
- Phi-3: a SentencePiece tokenizer trained here, saved by LlamaTokenizerFast (tokenizer.json too) with
  Phi-3's added tokens (<|endoftext|>, <|user|>, <|assistant|>, <|end|>) and vocab_size above the tokens
  ([PAD<i>]); fused qkv_proj and gate_up_proj kept fused (attn_qkv, ffn_up) as the reference writes them;
- GPT-2: a byte-level BPE trained here with GPT-2's ByteLevel pre-tokenizer (the reference names it by a
  hash of the ids of a test text, which a freshly trained vocabulary cannot match, so its
  get_vocab_base_pre() is patched to return "gpt-2"; Scalpel derives the name from tokenizer.json);
  Conv1D weights (c_attn, c_proj, c_fc) transposed, wpe kept F32, tied lm_head.
Both converters' files have the same tensors (names, types, shapes, bytes) and metadata (keys, types,
values); llama-simple's greedy tokens from both files are equal.
"""
import glob
import json
from pathlib import Path

import pytest

from hf_convert_oracle import compare_gguf, gguf_reader, greedy_outputs, llamacpp_bin, reference_convert, require_ml

REPO = Path(__file__).resolve().parents[2]
PHI3_ADDED = ["<|endoftext|>", "<|assistant|>", "<|end|>", "<|user|>"]


def corpus_texts():
    texts = [Path(p).read_text(errors="ignore") for p in sorted(glob.glob(str(REPO / "docs" / "*.md"))) if Path(p).is_file()]
    return texts + [(REPO / "README.md").read_text()]


def train_sentencepiece(folder: Path, **ids) -> str:
    import sentencepiece as spm
    corpus = folder.parent / f"{folder.name}-corpus.txt"
    corpus.write_text("\n".join(corpus_texts()))
    prefix = str(folder.parent / f"{folder.name}-sp")
    spm.SentencePieceTrainer.train(input=str(corpus), model_prefix=prefix, vocab_size=512, model_type="bpe",
                                   byte_fallback=True, character_coverage=1.0, num_threads=1, minloglevel=2, **ids)
    return prefix + ".model"


def randomize_norms(model):
    import torch
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)


def make_gemma2(folder: Path):
    import torch
    from transformers import Gemma2Config, Gemma2ForCausalLM, GemmaTokenizer
    folder.mkdir(parents=True)
    sp = train_sentencepiece(folder, pad_id=0, eos_id=1, bos_id=2, unk_id=3, bos_piece="<bos>", eos_piece="<eos>")
    tok = GemmaTokenizer(vocab_file=sp)
    torch.manual_seed(0)
    cfg = Gemma2Config(vocab_size=512, hidden_size=64, intermediate_size=160, num_hidden_layers=2, num_attention_heads=4,
                       num_key_value_heads=2, head_dim=16, query_pre_attn_scalar=16, max_position_embeddings=256,
                       sliding_window=128, pad_token_id=0, eos_token_id=1, bos_token_id=2)
    model = Gemma2ForCausalLM(cfg)
    randomize_norms(model)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def make_phi3(folder: Path, longrope=False):
    import torch
    from transformers import LlamaTokenizerFast, Phi3Config, Phi3ForCausalLM
    folder.mkdir(parents=True)
    sp = train_sentencepiece(folder)
    tok = LlamaTokenizerFast(vocab_file=sp, legacy=False, add_bos_token=True)
    tok.add_special_tokens({"additional_special_tokens": PHI3_ADDED[1:], "eos_token": PHI3_ADDED[0], "pad_token": PHI3_ADDED[0]})
    torch.manual_seed(0)
    # LongRoPE (Phi-3 128k, Phi-3.5): context 4 x the original, head_dim / 2 = 8 factors each.
    rope = dict(rope_scaling={"type": "longrope", "long_factor": [1.0 + 0.5 * i for i in range(8)],
                              "short_factor": [1.0 + 0.125 * i for i in range(8)]}, max_position_embeddings=1024) \
        if longrope else dict(max_position_embeddings=256)
    cfg = Phi3Config(vocab_size=520, hidden_size=64, intermediate_size=160, num_hidden_layers=2, num_attention_heads=4,
                     num_key_value_heads=2, original_max_position_embeddings=256, **rope,
                     sliding_window=127, rms_norm_eps=1e-5, bos_token_id=1, eos_token_id=tok.convert_tokens_to_ids(PHI3_ADDED[0]),
                     pad_token_id=tok.convert_tokens_to_ids(PHI3_ADDED[0]))
    model = Phi3ForCausalLM(cfg)
    randomize_norms(model)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def make_gpt2(folder: Path, tied=True):
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import GPT2Config, GPT2LMHeadModel, GPT2TokenizerFast
    folder.mkdir(parents=True)
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(vocab_size=600, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    bpe.train_from_iterator(corpus_texts(), trainer)
    eot = bpe.token_to_id("<|endoftext|>")
    tok = GPT2TokenizerFast(tokenizer_object=bpe, bos_token="<|endoftext|>", eos_token="<|endoftext|>",
                            unk_token="<|endoftext|>")
    torch.manual_seed(0)
    # n_ctx is in GPT-2's real config.json, and the reference reads it.
    cfg = GPT2Config(vocab_size=600, n_positions=128, n_ctx=128, n_embd=64, n_layer=2, n_head=4, bos_token_id=eot,
                     eos_token_id=eot, tie_word_embeddings=tied)
    model = GPT2LMHeadModel(cfg)
    randomize_norms(model)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


MAKERS = {"gemma2": make_gemma2, "phi3": make_phi3, "gpt2": make_gpt2}
PRE = {"gpt2": "gpt-2"}  # the reference's hash table cannot know a tokenizer trained here
N_TENSORS = {"gemma2": 1 + 1 + 2 * 11, "phi3": 2 + 1 + 2 * 6, "gpt2": 2 + 2 + 2 * 12}


@pytest.mark.parametrize("family,outtype", [("gemma2", "f32"), ("gemma2", "bf16"), ("phi3", "f32"), ("phi3", "q8_0"),
                                            ("gpt2", "f32"), ("gpt2", "f16")])
def test_same_as_reference(scalpel, tmp, family, outtype):
    require_ml()
    folder = MAKERS[family](tmp / family)
    ref = reference_convert(folder, tmp / "ref.gguf", outtype, pre_name=PRE.get(family))
    ours = scalpel.convert(folder, tmp / "ours.gguf", "--dtype", outtype)
    n_tensors, _ = compare_gguf(ref, ours)
    assert n_tensors == N_TENSORS[family]
    names = {t.name for t in gguf_reader(ours).tensors}
    if family == "gemma2":
        assert "output.weight" not in names and "blk.1.post_ffw_norm.weight" in names
    if family == "phi3":
        assert "blk.0.attn_qkv.weight" in names and "blk.0.ffn_gate.weight" not in names


def test_gpt2_untied_same_as_reference(scalpel, tmp):
    require_ml()
    folder = make_gpt2(tmp / "gpt2", tied=False)
    ref = reference_convert(folder, tmp / "ref.gguf", "f16", pre_name="gpt-2")
    ours = scalpel.convert(folder, tmp / "ours.gguf", "--dtype", "f16")
    n_tensors, _ = compare_gguf(ref, ours)
    assert n_tensors == N_TENSORS["gpt2"] + 1


@pytest.mark.parametrize("family", ["gemma2", "phi3", "gpt2"])
def test_greedy_tokens_equal_in_llama_cpp(scalpel, tmp, family):
    require_ml()
    folder = MAKERS[family](tmp / family)
    ref = reference_convert(folder, tmp / "ref.gguf", "f32", pre_name=PRE.get(family))
    ours = scalpel.convert(folder, tmp / "ours.gguf", "--dtype", "f32")
    outs = greedy_outputs([ref, ours], 16)
    assert outs[0] == outs[1] and outs[0].strip()


def rel(a, b):
    return float((a - b).abs().max() / a.abs().max())


@pytest.mark.parametrize("family,dtype,tol", [("gemma2", "f32", 1e-4), ("phi3", "f32", 1e-4), ("gpt2", "f32", 1e-4),
                                              ("gpt2", "q8_0", 5e-2)])
def test_round_trip_to_hugging_face(scalpel, tmp, family, dtype, tol):
    require_ml()
    import torch
    from transformers import AutoModelForCausalLM
    folder = MAKERS[family](tmp / family)
    gguf = scalpel.convert(folder, tmp / "m.gguf", "--dtype", dtype)
    back = tmp / "back"
    scalpel.run("convert", gguf, back)
    config = json.loads((back / "config.json").read_text())
    assert config["architectures"] == json.loads((folder / "config.json").read_text())["architectures"]
    a = AutoModelForCausalLM.from_pretrained(folder, attn_implementation="eager").eval()
    b = AutoModelForCausalLM.from_pretrained(back, attn_implementation="eager").eval()
    ids = torch.tensor([[1, 5, 77, 300, 12, 499, 3, 250]])
    with torch.no_grad():
        assert rel(a(ids).logits, b(ids).logits) <= tol
    if family == "gpt2":  # GPT-2's byte-level BPE is rebuilt (vocab.json, merges.txt): the same ids
        from transformers import AutoTokenizer
        ta, tb = AutoTokenizer.from_pretrained(folder), AutoTokenizer.from_pretrained(back)
        text = "Scalpel's GGUF -> Hugging Face:  naïve 1234 tokens<|endoftext|>Übergrößenträger\n\tend"
        assert ta(text)["input_ids"] == tb(text)["input_ids"]
        assert tb.eos_token == "<|endoftext|>"


def test_phi3_long_rope(scalpel, tmp):
    """LongRoPE factors become rope_factors_long/short tensors and rope.scaling.attn_factor, as the reference
    writes them; llama.cpp runs the file; back to Hugging Face, rope_scaling is rebuilt (same logits)."""
    require_ml()
    import torch
    from transformers import AutoModelForCausalLM
    folder = make_phi3(tmp / "phi3", longrope=True)
    ref = reference_convert(folder, tmp / "ref.gguf", "f32")
    ours = scalpel.convert(folder, tmp / "ours.gguf", "--dtype", "f32")
    n_tensors, _ = compare_gguf(ref, ours)
    assert n_tensors == N_TENSORS["phi3"] + 2
    fields = gguf_reader(ours).fields
    assert abs(fields["phi3.rope.scaling.attn_factor"].contents() - (1 + __import__("math").log(4) / __import__("math").log(256)) ** 0.5) < 1e-6
    if llamacpp_bin("llama-simple") is not None:
        outs = greedy_outputs([ref, ours], 16)
        assert outs[0] == outs[1] and outs[0].strip()
    back = tmp / "back"
    scalpel.run("convert", ours, back)
    config = json.loads((back / "config.json").read_text())
    original = json.loads((folder / "config.json").read_text())["rope_scaling"]
    assert config["rope_scaling"]["long_factor"] == original["long_factor"]
    assert config["rope_scaling"]["short_factor"] == original["short_factor"]
    a = AutoModelForCausalLM.from_pretrained(folder, attn_implementation="eager").eval()
    b = AutoModelForCausalLM.from_pretrained(back, attn_implementation="eager").eval()
    ids = torch.tensor([[1, 5, 77, 300, 12, 499, 3, 250]])
    with torch.no_grad():
        assert rel(a(ids).logits, b(ids).logits) <= 1e-4


def test_phi3_rope_scaling_type_not_supported_is_refused(scalpel, tmp):
    require_ml()
    folder = make_phi3(tmp / "phi3", longrope=True)
    cfg = json.loads((folder / "config.json").read_text())
    cfg["rope_scaling"]["type"] = "dynamic"
    (folder / "config.json").write_text(json.dumps(cfg))
    proc = scalpel.run("convert", folder, tmp / "out.gguf", check=False)
    assert proc.returncode == 1 and "rope scaling type dynamic is not supported for Phi-3" in proc.stderr, proc.stderr
    assert not (tmp / "out.gguf").exists()


def test_gemma2_without_its_sentencepiece_model_is_refused(scalpel, tmp):
    require_ml()
    folder = make_gemma2(tmp / "gemma2")
    (folder / "tokenizer.model").unlink()
    proc = scalpel.run("convert", folder, tmp / "out.gguf", check=False)
    assert proc.returncode == 1 and "no tokenizer.model (Gemma 2 needs its SentencePiece model)" in proc.stderr, proc.stderr
    assert not (tmp / "out.gguf").exists()
