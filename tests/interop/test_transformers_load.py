"""transformers itself loads what `scalpel quantize` writes into a model folder: bitsandbytes NF4 and LLM.int8
(as Params4bit / Linear8bitLt) and compressed-tensors int4, and the model still computes nearly the same
embedding. Needs torch, transformers, accelerate, bitsandbytes and compressed-tensors in the Python that runs
pytest (`make test` installs them into .venv; the tests skip without them):
    SCALPEL_MODEL=... python -m pytest tests/interop/test_transformers_load.py

Checked with torch 2.15 (CPU), transformers 4.57.6, bitsandbytes 0.50.2. Scalpel quantizes every linear layer
of MiniLM, BERT's `pooler.dense` included. transformers decides which nn.Linear to replace from the config's
`llm_int8_skip_modules`; when that is null it keeps its guess of the output layer in full precision (for a
model with no lm_head: the module of the last parameter, `pooler.dense`) and then fails to load the packed
weight Scalpel wrote for it ("size mismatch [73728, 1] vs [384, 384]" for NF4, "Only Tensors of floating
point ... can require gradients" for int8). Scalpel therefore writes `[]` when it kept no linear layer, and
these tests check that every linear layer loads as the bitsandbytes class with the library's dequantization
of each one equal to Scalpel's, bit for bit.
"""
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("accelerate")
bnb_functional = pytest.importorskip("bitsandbytes.functional")

MODEL = os.environ.get("SCALPEL_MODEL")
pytestmark = pytest.mark.skipif(not MODEL or not Path(MODEL).is_file(), reason="SCALPEL_MODEL not set")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """A copy of the real model's folder (config.json, tokenizer files, model.safetensors)."""
    out = tmp_path_factory.mktemp("hf") / "minilm"
    shutil.copytree(Path(MODEL).parent, out)
    return out


def load(model_dir, **kwargs):
    return transformers.AutoModel.from_pretrained(model_dir, **kwargs).eval()


def embedding(model, model_dir, text="Scalpel quantizes checkpoints without PyTorch."):
    tok = transformers.AutoTokenizer.from_pretrained(model_dir)
    with torch.no_grad():
        return model(**tok([text], return_tensors="pt")).last_hidden_state.mean(1)


@pytest.mark.parametrize("qtype,layer_class,min_cosine", [("nf4", "Linear4bit", 0.95), ("int8", "Linear8bitLt", 0.995)])
def test_bitsandbytes_folder_loads_quantized(scalpel, folder, tmp_path, qtype, layer_class, min_cosine):
    out = tmp_path / qtype
    scalpel.run("quantize", folder, out, "--type", qtype, *(["--double-quant"] if qtype == "nf4" else []))
    model = load(out, device_map="cpu")
    linear = {name: m for name, m in model.named_modules() if isinstance(m, torch.nn.Linear)}
    assert len(linear) == 6 * 6 + 1  # q, k, v, attention output, intermediate, output per layer; the pooler
    assert {name: type(m).__name__ for name, m in linear.items()} == {name: layer_class for name in linear}
    # bitsandbytes' own dequantization of each loaded weight equals scalpel's, bit for bit (before any
    # forward pass: bitsandbytes' CPU path may repack the weight in place when it first runs).
    scalpel.run("dequantize", out, tmp_path / "back")
    back = load_file(str(tmp_path / "back" / "model.safetensors"))
    for name, m in linear.items():
        w = m.weight
        if qtype == "nf4":
            theirs = bnb_functional.dequantize_4bit(w.data, w.quant_state)
        else:
            theirs = bnb_functional.int8_vectorwise_dequant(w.data, w.SCB)
        theirs = theirs.float().numpy()
        ours = back[f"{name}.weight"].astype(np.float32)
        assert theirs.shape == ours.shape and np.array_equal(theirs.view(np.uint32), ours.view(np.uint32)), name
    reference = embedding(load(folder), folder)
    assert torch.nn.functional.cosine_similarity(reference, embedding(model, out)).item() > min_cosine


def test_compressed_tensors_folder_loads(scalpel, folder, tmp_path):
    pytest.importorskip("compressed_tensors")
    out = tmp_path / "int4"
    scalpel.run("quantize", folder, out, "--type", "int4")
    reference = embedding(load(folder), folder)
    got = embedding(load(out, device_map="cpu"), out)
    assert torch.nn.functional.cosine_similarity(reference, got).item() > 0.9
