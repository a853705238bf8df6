"""Reading and writing files for both halves: text and YAML read with one-line errors; outputs written
so that nothing is left half-written (a temporary file, then an atomic rename); output paths checked
before the work starts.

The output policy, one for every entry point: an output is a new path or a regular file that is not
an input of the same command. A symlink is written through (its target is replaced atomically, the
link stays). A folder, device, FIFO or socket is refused, except ``-`` and ``/dev/stdout`` where a
command streams to standard output (``write_json``, ``infer.py --json``).
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import sys
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from base.errors import ToolchainError, UsageError
from base.limits import MAX_TEXT_BYTES, MAX_YAML_VALUES, expanded_size, file_kind, read_bounded


def read_text(path: str | Path, what: str, error: type[ToolchainError] = ToolchainError) -> str:
    """A UTF-8 text file's contents.

    Args:
        path: The file.
        what: What it is, for the message (``data.yaml``, ``label file``).
        error: The exception raised: ``ToolchainError`` for input files, ``UsageError`` for configs.

    Raises:
        ToolchainError: (or ``error``) The file cannot be read, is not a regular file, is over
            ``MAX_TEXT_BYTES`` or is not UTF-8: one line naming it.
    """
    path = Path(path)
    data = read_bounded(path, what, MAX_TEXT_BYTES, error)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"{path}: {what} is not UTF-8 text (byte {exc.start}); save it as UTF-8") from None


def parse_yaml(text: str, where: str, error: type[ToolchainError] = ToolchainError) -> Any:
    """Parse YAML text (safe loader: plain data only); a syntax error is one line naming ``where``, the
    line and the column.

    Raises:
        ToolchainError: (or ``error``) Not valid YAML, nested too deeply to parse, or with aliases that
            expand to over ``MAX_YAML_VALUES`` values (or refer to themselves).
    """
    import yaml

    try:
        raw = yaml.safe_load(text)
        values = expanded_size(raw)
    except ValueError:
        raise error(f"{where}: a YAML alias refers to itself; write the value out") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or " ".join(str(exc).split())
        raise error(f"{where}{at}: not valid YAML ({problem})") from None
    except RecursionError:
        raise error(f"{where}: not valid YAML (nested too deeply)") from None
    if values > MAX_YAML_VALUES:
        raise error(f"{where}: its aliases expand to over {MAX_YAML_VALUES:,} values; write the YAML out without "
                    "nested aliases")  # fmt: skip
    return raw


def read_yaml_mapping(
    path: str | Path, what: str = "config file", error: type[ToolchainError] = UsageError, hint: str = ""
) -> dict:
    """A YAML file whose top level is a mapping (an empty file is ``{}``): the one YAML reader of both
    halves (data.yaml, configs, quant configs).

    Args:
        path: The YAML file.
        what: What it is, for the messages.
        error: ``ToolchainError`` for input files (exit 1), ``UsageError`` for configs (exit 2).
        hint: Appended to the not-found message (how to make the file).

    Raises:
        ToolchainError: (or ``error``) The file is missing or unreadable, is not YAML, or is not a mapping.
    """
    path = Path(path)
    if not path.exists():
        raise error(f"{path}: {what} not found{hint}")
    raw = parse_yaml(read_text(path, what, error), str(path), error)
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise error(f"{path}: expected a mapping of keys to values at the top, got {type(raw).__name__}")
    return raw


STDOUT_NAMES = ("-", "/dev/stdout")


def is_stdout(path: str | Path | None) -> bool:
    """Whether an output path means standard output (``-`` or ``/dev/stdout``)."""
    return path is not None and str(path) in STDOUT_NAMES


def output_target(path: str | Path, flag: str = "output") -> Path:
    """The file an output replaces: ``path``, or the final target of a symlink (written through).

    Raises:
        ToolchainError: ``path`` (or its target) exists and is not a regular file: a folder, a device,
            a FIFO or a socket, which an atomic rename would replace.
    """
    path = Path(path)
    target = Path(os.path.realpath(path)) if path.is_symlink() else path
    try:
        mode = target.stat().st_mode
    except OSError:  # a new path (or a symlink to one): created
        return target
    if not stat.S_ISREG(mode):
        via = f" (a link to {target})" if target != path else ""
        raise ToolchainError(f"{flag} {path}{via}: is {file_kind(mode)}, not a regular file; expected a file path")
    return target


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
def atomic_path(path: str | Path, keep_suffix: bool = False, flag: str = "output") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` atomically, on an
    exception it is removed and ``path`` is left as it was.

    Example:
        >>> with atomic_path("model.onnx") as tmp:
        ...     onnx.save(model, tmp)
    """
    path = output_target(path, flag)
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
    """Write ``data`` as indented JSON, atomically (to standard output for ``-`` or ``/dev/stdout``)."""
    text = json.dumps(data, indent=2, default=str) + "\n"
    if is_stdout(path):
        sys.stdout.write(text)
        sys.stdout.flush()
        return Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(text)
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
    if is_stdout(path):
        return path
    if path.is_dir():
        raise ToolchainError(f"{flag} {path}: is a folder; expected a file path")
    target = output_target(path, flag)
    check_output_folder(target.parent, flag, path)
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
    problem = write_problem(folder)
    if problem:
        raise ToolchainError(f"{flag} {target}: cannot write in {folder} ({problem}); choose a writable folder")
    return folder


def write_problem(folder: str | Path) -> str | None:
    """Why a file cannot be created in the existing ``folder`` (``None`` when it can).

    Probed by creating and removing a temporary file, which also catches read-only mounts and, unlike
    ``os.access``, holds for root.
    """
    try:
        with tempfile.TemporaryFile(dir=folder):
            return None
    except OSError as exc:
        return exc.strerror or str(exc)


def check_distinct_paths(outputs: Mapping | Iterable[tuple[str, str | Path | None]], inputs: Mapping) -> None:
    """Refuse, before any work, an output that is one of the inputs or another output of the same run.

    Args:
        outputs: What names each output (a flag, or ``the sidecar of --out``) to its path, as a mapping or
            pairs; ``None`` paths are skipped.
        inputs: What names each input to its path; ``None`` is skipped.

    Raises:
        UsageError: Naming both and the fix.
    """
    seen = {Path(p).resolve(): f"the input {name}" for name, p in inputs.items() if p}
    for name, path in outputs.items() if isinstance(outputs, Mapping) else outputs:
        if not path or is_stdout(path):
            continue
        clash = seen.get(Path(path).resolve())
        if clash:
            raise UsageError(f"{name} {path}: the same file as {clash}; it would be overwritten, choose another path")
        seen[Path(path).resolve()] = name
