"""transformers itself loads what `scalpel quantize` writes into a model folder: bitsandbytes NF4 and LLM.int8
(as Params4bit / Linear8bitLt) and compressed-tensors int4, and the model still computes nearly the same
embedding. Needs torch, transformers, accelerate, bitsandbytes and compressed-tensors in the Python that runs
pytest, which `make test` does not install (torch is large): the tests skip without them. Run them with
e.g. a venv holding torch (CPU), transformers, accelerate, bitsandbytes and compressed-tensors:
    SCALPEL_MODEL=... python -m pytest tests/interop/test_transformers_load.py
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
    query = model.encoder.layer[0].attention.self.query
    assert type(query).__name__ == layer_class
    if qtype == "nf4":
        # bitsandbytes' own dequantization of the loaded weight equals scalpel's, bit for bit (before any
        # forward pass: bitsandbytes' CPU path may repack the weight in place when it first runs).
        w = query.weight
        theirs = bnb_functional.dequantize_4bit(w.data, w.quant_state).float().numpy()
        scalpel.run("dequantize", out, tmp_path / "back")
        ours = load_file(str(tmp_path / "back" / "model.safetensors"))["encoder.layer.0.attention.self.query.weight"]
        assert np.array_equal(theirs, ours)
    reference = embedding(load(folder), folder)
    assert torch.nn.functional.cosine_similarity(reference, embedding(model, out)).item() > min_cosine


def test_compressed_tensors_folder_loads(scalpel, folder, tmp_path):
    pytest.importorskip("compressed_tensors")
    out = tmp_path / "int4"
    scalpel.run("quantize", folder, out, "--type", "int4")
    reference = embedding(load(folder), folder)
    got = embedding(load(out, device_map="cpu"), out)
    assert torch.nn.functional.cosine_similarity(reference, got).item() > 0.9
