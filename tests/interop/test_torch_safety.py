"""A pickle that calls a global outside torch's tensor set is refused and runs nothing.

The malicious files are made here with Python's own pickle (a __reduce__ returning os.system / other
callables), packed into a torch.save-shaped zip. Python's pickle, given the same bytes, does run the
command (checked first, in a subprocess, so the test proves the file is live); scalpel refuses it naming
the global, and the marker file is never created.
"""
import io
import os
import pickle
import subprocess
import sys
import zipfile

import pytest


class Call:
    def __init__(self, fn, args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return (self.fn, self.args)


def torch_zip(payload: bytes) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        z.writestr("archive/data.pkl", payload)
        z.writestr("archive/byteorder", b"little")
        z.writestr("archive/version", b"3\n")
    return buf.getvalue()


def payloads(marker):
    cmd = f"touch {marker}"
    yield "os.system", pickle.dumps({"w": Call(os.system, (cmd,))}, protocol=2), f"refused global {os.system.__module__}.system"
    yield "subprocess.call", pickle.dumps({"w": Call(subprocess.call, (["touch", str(marker)],))}, protocol=4), \
        "refused global subprocess.call"
    yield "builtins.exec", pickle.dumps(Call(exec, (f"open({str(marker)!r}, 'w')",)), protocol=2), "refused global builtins.exec"


@pytest.mark.parametrize("kind", ["os.system", "subprocess.call", "builtins.exec"])
@pytest.mark.parametrize("command", ["inspect", "convert"])
def test_malicious_pickle_is_refused_and_runs_nothing(scalpel, tmp, kind, command):
    marker = tmp / "pwned"
    name, payload, expected = next(p for p in payloads(marker) if p[0] == kind)
    # The payload is live: Python's unpickler runs it.
    subprocess.run([sys.executable, "-c", "import pickle,sys; pickle.loads(sys.stdin.buffer.read())"],
                   input=payload, check=False, capture_output=True)
    assert marker.exists(), "the test payload should run under pickle.loads"
    marker.unlink()
    path = tmp / "model.pt"
    path.write_bytes(torch_zip(payload))
    args = ["inspect", path] if command == "inspect" else ["convert", path, tmp / "out.safetensors"]
    proc = scalpel.run(*args, check=False)
    assert proc.returncode == 1
    assert expected in proc.stderr, proc.stderr
    assert proc.stderr.count("\n") == 1
    assert not marker.exists(), "scalpel executed the pickle"
    assert not (tmp / "out.safetensors").exists()


def test_adapter_model_bin_with_payload_is_refused(scalpel, tmp):
    marker = tmp / "pwned"
    (tmp / "adapter").mkdir()
    (tmp / "adapter" / "adapter_config.json").write_text('{"peft_type": "LORA", "r": 2, "lora_alpha": 4, "target_modules": ["q"]}')
    (tmp / "adapter" / "adapter_model.bin").write_bytes(torch_zip(pickle.dumps({"w": Call(os.system, (f"touch {marker}",))}, protocol=2)))
    proc = scalpel.run("inspect", tmp / "adapter", check=False)
    assert proc.returncode == 1 and "refused global" in proc.stderr, proc.stderr
    assert not marker.exists()
