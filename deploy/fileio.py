"""Writing outputs so that nothing is left half-written: a temporary file, then an atomic rename;
and output paths checked before the work starts.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from deploy.errors import ToolchainError


def temp_path_beside(path: str | Path, keep_suffix: bool = False) -> Path:
    """Create an empty hidden temporary file in ``path``'s folder and return its path.

    Args:
        path: The final file.
        keep_suffix: End the temporary name with ``path``'s suffix (a video writer picks its
            container from it).

    Raises:
        ToolchainError: The folder does not exist or cannot be written.
    """
    path = Path(path)
    try:
        fd, name = tempfile.mkstemp(
            prefix=f".{path.name}.", suffix=f".tmp{path.suffix}" if keep_suffix else ".tmp", dir=path.parent
        )
    except OSError as exc:
        where = f"{path}: cannot write in {path.parent}"
        raise ToolchainError(f"{where} ({exc.strerror}); choose a writable folder") from exc
    os.close(fd)
    return Path(name)


def commit_temp(tmp: Path, path: str | Path) -> Path:
    """Give the finished temporary file ordinary permissions and rename it to ``path`` atomically."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes files private; outputs are ordinary files
    os.replace(tmp, path)
    return Path(path)


@contextlib.contextmanager
def atomic_path(path: str | Path, keep_suffix: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` atomically, on an
    exception it is removed and ``path`` is left as it was.

    Example:
        >>> with atomic_path("model.onnx") as tmp:
        ...     onnx.save(model, tmp)
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ToolchainError(f"{path}: cannot create its folder {path.parent} ({exc.strerror})") from exc
    tmp = temp_path_beside(path, keep_suffix)
    try:
        yield tmp
        commit_temp(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_json(path: str | Path, data: object) -> Path:
    """Write ``data`` as indented JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")
    return Path(path)


def check_output_file(path: str | Path, flag: str) -> Path:
    """Check, before any work, that ``path`` can be written: its folder exists and takes a file,
    and ``path`` is not a folder.

    The folder is probed by creating (and removing) a temporary file in it, which also catches
    read-only mounts and, unlike ``os.access``, works for root.

    Args:
        path: The output file.
        flag: The flag or key that named it, for the message (``--json``).

    Raises:
        ToolchainError: Naming the flag, the path and the fix.
    """
    path = Path(path)
    if path.is_dir():
        raise ToolchainError(f"{flag} {path}: is a folder; expected a file path")
    check_output_folder(path.parent, flag, path)
    return path


def check_output_folder(folder: str | Path, flag: str, target: str | Path | None = None) -> Path:
    """Check that ``folder`` exists and a file can be created in it (see ``check_output_file``).

    Raises:
        ToolchainError: Naming the flag, the path and the fix.
    """
    folder, target = Path(folder), Path(target if target is not None else folder)
    if not folder.exists():
        raise ToolchainError(f"{flag} {target}: folder {folder} does not exist; create it or choose another path")
    if not folder.is_dir():
        raise ToolchainError(f"{flag} {target}: {folder} is not a folder; choose another path")
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise ToolchainError(
            f"{flag} {target}: cannot write in {folder} ({exc.strerror}); choose a writable folder"
        ) from exc
    return folder
