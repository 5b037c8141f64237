#!/usr/bin/env python3
"""Times a command: median, min and max wall seconds over N runs, printed as one JSON object.

Usage: timing.py [--runs N] [--warmup W] [--prepare SHELL_CMD] -- COMMAND ARGS...

Uses hyperfine (no shell, -N) when it is installed, else a plain loop with time.perf_counter.
--prepare runs (through the shell) before every timed run and is not timed (e.g. removing an output).
Standard library only.
"""
import argparse
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time


def with_hyperfine(cmd, runs, warmup, prepare):
    with tempfile.TemporaryDirectory() as d:
        export = os.path.join(d, "h.json")
        args = ["hyperfine", "-N", "--style", "none", "--runs", str(runs), "--warmup", str(warmup),
                "--export-json", export]
        if prepare:
            args += ["--prepare", prepare]
        subprocess.run(args + ["--", shlex.join(cmd)], check=True, stdout=subprocess.DEVNULL)
        with open(export) as f:
            times = json.load(f)["results"][0]["times"]
    return times, "hyperfine"


def with_loop(cmd, runs, warmup, prepare):
    times = []
    for i in range(warmup + runs):
        if prepare:
            subprocess.run(prepare, shell=True, check=True)
        start = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        elapsed = time.perf_counter() - start
        if i >= warmup:
            times.append(elapsed)
    return times, "loop"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--prepare")
    p.add_argument("command", nargs=argparse.REMAINDER)
    a = p.parse_args()
    cmd = a.command[1:] if a.command[:1] == ["--"] else a.command
    if not cmd:
        p.error("no command")
    timer = with_hyperfine if shutil.which("hyperfine") else with_loop
    times, tool = timer(cmd, a.runs, a.warmup, a.prepare)
    print(json.dumps({"median": statistics.median(times), "min": min(times), "max": max(times),
                      "runs": len(times), "tool": tool, "command": shlex.join(cmd)}))


if __name__ == "__main__":
    sys.exit(main())
