"""One benchmark step in a fresh interpreter, with that interpreter's own peak memory.

A benchmark's parent process imports only the standard library, so a child's
``ru_maxrss`` (from ``os.wait4``; it counts pages inherited at fork) is the child's own.
The child is the same script run as ``SCRIPT --child JSON``; it prints its result as
JSON on its last line.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys


def run_child(script: str, spec: dict) -> tuple[dict, float]:
    """Run ``script --child spec``; its parsed result and its peak RSS in MiB."""
    proc = subprocess.Popen([sys.executable, script, "--child", json.dumps(spec)], stdout=subprocess.PIPE, text=True)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.stdout.close()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"child failed: {spec}")
    return json.loads(out.strip().splitlines()[-1]), usage.ru_maxrss / 1024.0  # KiB -> MiB
