#!/usr/bin/env python3
"""Prints the malformed corpus as a markdown table: file, the rule it breaks, and the error line scalpel
gives for `scalpel inspect FILE` (the path left out). Used for docs/reliability.md.

Run: python3 Fuzz/corpus_table.py [SCALPEL_BIN]
"""
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO / "fixtures" / "malformed"
binary = str(Path(sys.argv[1]).resolve()) if len(sys.argv) > 1 else str(REPO / ".build" / "release" / "scalpel")
expected = json.loads((CORPUS / "expected.json").read_text())
print("| file | breaks | `scalpel inspect FILE` says (after `scalpel: error: FILE: `) |")
print("|---|---|---|")
for name in sorted(expected):
    p = subprocess.run([binary, "inspect", name], cwd=CORPUS, capture_output=True, text=True, timeout=120)
    line = p.stderr.strip()
    assert p.returncode == 1 and "\n" not in line, (name, p.returncode, line)
    message = line.removeprefix(f"scalpel: error: {name}: ")
    cell = lambda s: s.replace("|", "\\|").replace("`", "'")
    print(f"| `{name}` | {cell(expected[name]['breaks'])} | {cell(message)} |")
