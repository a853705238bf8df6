"""A generated data folder written whole or not at all, and reused when it was made by the same inputs.

The folder is built in a temporary sibling and renamed into place; ``generator.json`` in it records
what it was made from (a JSON mapping), so a rerun with the same mapping reuses it and another one
replaces it only when forced.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from base.errors import ToolchainError

logger = logging.getLogger(__name__)
STAMP = "generator.json"


def is_current(out: Path, stamp: dict) -> bool:
    """``out`` was generated from ``stamp``."""
    path = out / STAMP
    return path.is_file() and json.loads(path.read_text()) == stamp


def write_folder(out: str | Path, stamp: dict, write: Callable[[Path], None], force: bool, what: str) -> Path:
    """``write(tmp)`` fills a temporary folder beside ``out``, which then replaces ``out``; returns
    ``out/data.yaml``.

    Raises:
        ToolchainError: ``out`` exists, was not made from ``stamp`` and ``force`` is not set.
    """
    out = Path(out)
    if is_current(out, stamp) and not force:
        logger.info("%s in %s is up to date (%s); reusing it", what, out, STAMP)
        return out / "data.yaml"
    if out.exists() and not force:
        raise ToolchainError(
            f"{out} exists and was not generated with this config; pass --force to replace it or pick another --out"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        write(tmp)
        (tmp / STAMP).write_text(json.dumps(stamp, indent=2))
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out / "data.yaml"
