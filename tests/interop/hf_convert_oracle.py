"""The llama.cpp side of the Hugging Face -> GGUF tests: its converter, its runtime, and a GGUF comparison.

The reference is llama.cpp's convert_hf_to_gguf.py from the llama-cpp-python 0.3.36 sdist, as
scripts/llamacpp.sh unpacks it under ${SCALPEL_CACHE:-~/.cache/scalpel}/llamacpp-0.3.36 (or LLAMACPP_SRC,
a llama.cpp source folder). It needs torch, transformers 4.57.6, sentencepiece and protobuf>=5 in the
interpreter running the tests; everything skips with the reason when something is missing.
"""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

CACHE = Path(os.environ.get("SCALPEL_CACHE", Path.home() / ".cache" / "scalpel")) / "llamacpp-0.3.36"


def llamacpp_src() -> Path | None:
    for p in [os.environ.get("LLAMACPP_SRC"), CACHE / "src" / "llama_cpp_python-0.3.36" / "vendor" / "llama.cpp"]:
        if p and (Path(p) / "convert_hf_to_gguf.py").is_file():
            return Path(p)
    return None


def llamacpp_bin(name: str) -> Path | None:
    for p in [CACHE / "bin" / name, CACHE / "build" / "bin" / name]:
        if p.is_file() and os.access(p, os.X_OK):
            return p
    return shutil.which(name) and Path(shutil.which(name))


def require_ml():
    """Skips unless torch, transformers, tokenizers and sentencepiece import."""
    for mod in ["torch", "transformers", "tokenizers", "sentencepiece"]:
        pytest.importorskip(mod, reason=f"{mod} is not installed: the HF -> GGUF oracle tests need torch, "
                                        "transformers==4.57.6, tokenizers, sentencepiece, protobuf>=5")


def reference_convert(folder: Path, out: Path, outtype: str, pre_name: str | None = None) -> Path:
    """Runs llama.cpp's convert_hf_to_gguf.py (skips when it is not unpacked).

    pre_name: for a BPE tokenizer trained in a test, whose pre-tokenizer hash the reference's table cannot
    know, the name its get_vocab_base_pre() returns (patched in; everything else runs unchanged)."""
    src = llamacpp_src()
    if src is None:
        pytest.skip("llama.cpp's convert_hf_to_gguf.py not found: run scripts/llamacpp.sh or set LLAMACPP_SRC")
    args = [str(folder), "--outfile", str(out), "--outtype", outtype]
    if pre_name is None:
        cmd = [sys.executable, str(src / "convert_hf_to_gguf.py"), *args]
    else:
        code = (f"import sys, runpy; sys.path.insert(0, {str(src)!r}); sys.argv = ['convert_hf_to_gguf.py'] + {args!r}; "
                f"import conversion.base as b; b.TextModel.get_vocab_base_pre = lambda self, tok: {pre_name!r}; "
                f"runpy.run_path({str(src / 'convert_hf_to_gguf.py')!r}, run_name='__main__')")
        cmd = [sys.executable, "-c", code]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        pytest.fail(f"convert_hf_to_gguf.py failed:\n{proc.stderr[-3000:]}", pytrace=False)
    return out


def greedy_outputs(files, n_tokens: int, prompt: str = "Scalpel converts") -> list[bytes]:
    """llama-simple's greedy output for each GGUF in `files` (skips when it is not built). Bytes: a random
    model's tokens need not be UTF-8."""
    exe = llamacpp_bin("llama-simple")
    if exe is None:
        pytest.skip("llama-simple is not built (scripts/llamacpp.sh)")
    outs = []
    for f in files:
        p = subprocess.run([str(exe), "-m", str(f), "-n", str(n_tokens), prompt], capture_output=True, timeout=300)
        assert p.returncode == 0, p.stderr[-2000:].decode(errors="replace")
        outs.append(p.stdout)
    return outs


def gguf_reader(path):
    src = llamacpp_src()
    if src is not None and str(src / "gguf-py") not in sys.path:
        sys.path.insert(0, str(src / "gguf-py"))  # the gguf-py that matches the converter
    import gguf
    return gguf.GGUFReader(str(path))


# general.* keys the reference takes from the model card (README.md), which Scalpel does not read.
CARD_KEYS = ("general.name", "general.version", "general.organization", "general.basename", "general.finetune",
             "general.license", "general.tags", "general.languages", "general.dataset", "general.base_model",
             "general.quantized_by", "general.repo_url", "general.description")


def compare_gguf(ref_path, ours_path):
    """Asserts the same tensors (names, types, shapes, bytes) and the same metadata (keys, types, values),
    model-card keys aside. Returns the number of tensors and keys compared."""
    a, b = gguf_reader(ref_path), gguf_reader(ours_path)
    fa = {k: f for k, f in a.fields.items() if not k.startswith("GGUF.") and not k.startswith(CARD_KEYS)}
    fb = {k: f for k, f in b.fields.items() if not k.startswith("GGUF.") and not k.startswith(CARD_KEYS)}
    assert sorted(fa) == sorted(fb), f"keys only in reference: {set(fa) - set(fb)}, only in scalpel: {set(fb) - set(fa)}"
    for k in fa:
        assert list(fa[k].types) == list(fb[k].types), f"{k}: types {fa[k].types} vs {fb[k].types}"
        assert fa[k].contents() == fb[k].contents(), f"{k}: {str(fa[k].contents())[:200]} vs {str(fb[k].contents())[:200]}"
    ta, tb = {t.name: t for t in a.tensors}, {t.name: t for t in b.tensors}
    assert sorted(ta) == sorted(tb)
    for n, x in ta.items():
        y = tb[n]
        assert x.tensor_type == y.tensor_type, f"{n}: {x.tensor_type.name} vs {y.tensor_type.name}"
        assert list(x.shape) == list(y.shape), n
        assert x.data.tobytes() == y.data.tobytes(), f"{n}: bytes differ"
    return len(ta), len(fa)
