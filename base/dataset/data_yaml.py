"""``data.yaml`` in ultralytics' format read and checked: split sources resolved, class names validated."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from base.errors import ToolchainError
from base.fileio import read_yaml_mapping
from base.limits import check_class_count


@dataclass(frozen=True)
class DatasetSpec:
    """A resolved ``data.yaml``: absolute split sources and class names.

    Attributes:
        yaml_path: The file it was read from.
        root: The folder the split paths are relative to.
        splits: Split name (``train``, ``val``, ``test``) to its image folders or list files.
        names: Class names, index = class id.
    """

    yaml_path: Path
    root: Path
    splits: dict[str, list[Path]]
    names: list[str]

    @property
    def nc(self) -> int:
        """Number of classes."""
        return len(self.names)


def _short(value: object, width: int = 80) -> str:
    """A value's repr cut to ``width`` characters, for one-line messages."""
    text = repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."


def _names(raw: object, path: Path) -> list[str]:
    if isinstance(raw, (list, dict)):
        check_class_count(len(raw), f"{path}: 'names'")
    if isinstance(raw, dict) and raw:
        bad = [k for k in raw if not isinstance(k, int) or isinstance(k, bool)]
        if bad:
            raise ToolchainError(
                f"{path}: 'names' keys must be integer class ids, got {bad[0]!r} ({type(bad[0]).__name__}); "
                "write them unquoted: {0: name, 1: name}"
            )
        keys = sorted(raw)
        if keys != list(range(len(keys))):
            missing = next(i for i, k in enumerate(keys) if i != k)
            raise ToolchainError(f"{path}: 'names' keys must be 0..{len(keys) - 1} without gaps; {missing} is missing")
        raw = [raw[k] for k in keys]
    if not isinstance(raw, list) or not raw:
        raise ToolchainError(
            f"{path}: 'names' must be a non-empty list or a dict of class id to name, got {_short(raw)}"
        )
    bad_names = [n for n in raw if not isinstance(n, (str, int, float)) or isinstance(n, bool)]
    if bad_names:
        raise ToolchainError(f"{path}: 'names' holds {_short(bad_names[0])}; every class name must be a string")
    return [str(n) for n in raw]


def _root(raw: dict, path: Path) -> Path:
    given = raw.get("path")
    if given in (None, ""):
        return path.parent.resolve()
    if not isinstance(given, str):
        raise ToolchainError(f"{path}: 'path' must be a folder path (a string), got {given!r}")
    root = Path(given)
    return root if root.is_absolute() else Path.cwd() / root


def _split_sources(raw: dict, split: str, root: Path, path: Path) -> list[Path]:
    entries = raw[split] if isinstance(raw[split], list) else [raw[split]]
    sources = []
    for entry in entries:
        if not isinstance(entry, str) or not entry:
            raise ToolchainError(
                f"{path}: '{split}' must be a folder or a .txt list of images (or a list of them), got {entry!r}"
            )
        try:
            src = (root / entry).resolve()
            exists, is_file = src.exists(), src.is_file()
        except (OSError, ValueError) as exc:  # a name too long, a NUL byte
            raise ToolchainError(f"{path}: '{split}' is not a usable path {entry!r} ({exc})") from exc
        if not exists:
            shown = str(src) if str(src).isprintable() else repr(str(src))  # one line, even for a name with a newline
            raise ToolchainError(f"{path}: '{split}' points to {shown}, which does not exist; fix the path in the YAML")
        if is_file and src.suffix.lower() != ".txt":
            raise ToolchainError(
                f"{path}: '{split}' points to the file {src}; expected a folder of images or a .txt file "
                "listing one image path a line"
            )
        sources.append(src)
    return sources


def load_data_yaml(path: str | Path) -> DatasetSpec:
    """Read and resolve an ultralytics-style ``data.yaml``.

    Split paths are resolved against the ``path:`` key when present (relative to the working
    directory, as ultralytics does), else against the YAML's own folder.

    Args:
        path: The ``data.yaml`` file.

    Returns:
        The resolved spec.

    Raises:
        ToolchainError: The file is missing or unreadable, a key is missing, or a split path does
            not exist.
    """
    path = Path(path)
    hint = "; run 'make data' for the synthetic set or pass DATA=path/to/data.yaml"
    raw = read_yaml_mapping(path, "data.yaml", ToolchainError, hint)
    if not raw:
        raise ToolchainError(f"{path}: expected a mapping with 'train', 'val' and 'names', got an empty file")
    for key in ("train", "val", "names"):
        if key not in raw:
            raise ToolchainError(f"{path}: missing key '{key}' (expected 'train', 'val' and 'names')")
    names = _names(raw["names"], path)
    if "nc" in raw and raw["nc"] != len(names):
        raise ToolchainError(f"{path}: 'nc' is {raw['nc']!r} but 'names' lists {len(names)} classes; make them agree")
    root = _root(raw, path)
    splits = {split: _split_sources(raw, split, root, path) for split in ("train", "val", "test") if raw.get(split)}
    return DatasetSpec(path, root, splits, names)
