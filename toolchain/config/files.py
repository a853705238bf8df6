"""Config files: YAML configs read (through deploy's one YAML reader), and the resolved config written
beside every output.

A resolved config (a *record*) is the command's whole config, defaults included, with the schema
``version``. It is written as ``<run>/<command>.yaml``, inside checkpoints (``config``), inside the
sidecar of every ONNX (``extra.config``) and inside reports (``config``); ``--config`` reads any
of them back, so ``toolchain qat --config runs/qat/x/qat.yaml`` runs the same job again.

Example:
    >>> raw = read_yaml_mapping("configs/qat.yaml")
    >>> write_record("runs/qat/x/qat.yaml", cfg, "qat")
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from base import fileio
from base.errors import UsageError
from base.fileio import atomic_path
from toolchain.config.tree import to_dict

SCHEMA_VERSION = 1


def parse_yaml(text: str, where: str) -> Any:
    """Parse YAML text of a flag or config; a syntax error is one ``UsageError`` line (``base.fileio.parse_yaml``)."""
    return fileio.parse_yaml(text, where, UsageError)


def read_yaml_mapping(path: str | Path, what: str = "config file") -> dict:
    """A config YAML whose top level is a mapping (an empty file is ``{}``); the reader is deploy's
    (``base.fileio.read_yaml_mapping``, shared with data.yaml), its errors ``UsageError`` (exit 2).

    Raises:
        UsageError: The file is missing or unreadable, is not YAML, or is not a mapping.
    """
    return fileio.read_yaml_mapping(path, what, UsageError)


def record(cfg: object) -> dict:
    """The resolved config as plain values, with the schema version first."""
    return {"version": SCHEMA_VERSION, **to_dict(cfg)}


def write_record(path: str | Path, cfg: object, command: str) -> Path:
    """Write ``record(cfg)`` as YAML, atomically, with a comment saying how to run it again."""
    import yaml

    path = Path(path)
    header = f"# Resolved config of 'toolchain {command}'; run it again: toolchain {command} --config {path}\n"
    with atomic_path(path) as tmp:
        tmp.write_text(header + yaml.safe_dump(record(cfg), sort_keys=False))
    return path


def read_config_file(path: str | Path) -> dict:
    """The config mapping in a ``--config`` file: a YAML of a command's keys, a written record, a
    model sidecar (``extra.config``) or a report (``config``). A ``version`` other than ours is refused."""
    raw = read_yaml_mapping(path)
    extra = raw.get("extra")
    if isinstance(extra, dict) and isinstance(extra.get("config"), dict):
        raw = extra["config"]
    elif isinstance(raw.get("config"), dict):
        raw = raw["config"]
    raw = dict(raw)
    version = raw.pop("version", SCHEMA_VERSION)
    if version != SCHEMA_VERSION:
        raise UsageError(f"{path}: config schema version {version!r}; this toolchain reads version {SCHEMA_VERSION}")
    return raw
