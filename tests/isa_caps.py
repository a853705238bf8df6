"""Run code under each oneDNN instruction-set cap this machine can take (``ONEDNN_MAX_CPU_ISA``).

oneDNN reads the cap when a process starts, so each ISA runs in its own subprocess. ``ISAS`` is what
tests parametrise over: every ISA of ``deploy.cpu.ISA_FLAGS`` this CPU has, then ``native`` (no cap).
A CPU with none of them (not x86) has only ``native``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from deploy.cpu import cap_env, supported_isas

REPO = Path(__file__).resolve().parents[1]
ISAS = [*supported_isas(), "native"]


def run_capped(isa: str, code: str, *args: str, threads: int | None = None, timeout: float = 300) -> dict:
    """Run ``code`` (Python, its last line printing one JSON object) under ``isa``; return that object."""
    env = cap_env(None if isa == "native" else isa)
    if threads:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    proc = subprocess.run([sys.executable, "-c", code, *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=timeout)  # fmt: skip
    assert proc.returncode == 0, f"under {isa}: {proc.stderr[-3000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])
