"""Checks of a field's value against this machine: a file that must exist, a place that must be
writable, a GPU that must be there, an image size that must fit in memory. Each says what it found,
and never opens what it checks (a FIFO or a device is named as what it is, never read).

Example:
    >>> device_problem("cuda:3")  # on a machine with one GPU
    'GPU 3 does not exist: torch sees 1 GPU(s), ids 0..0'
"""

from __future__ import annotations

from pathlib import Path

from base.fileio import write_problem
from base.limits import file_kind, image_size_problem
from toolchain.config.field_types import ExistingFile, FieldError, FitsMemory, TorchDevice, Writable


def device_problem(value: str) -> str | None:
    """Why ``value`` is not a device of this machine (``None`` where it is)."""
    text = str(value).strip().lower()
    if text == "cpu":
        return None
    ids = text.removeprefix("cuda").removeprefix(":").split(",") if text != "cuda" else ["0"]
    if text != "mps" and not all(i.strip().isdigit() for i in ids):
        return f"expected cpu, cuda, cuda:N or GPU ids like 0 or 0,1; got {value!r}"
    import torch  # lazy: configs are built before the heavy imports of a command

    if text == "mps":
        missing = "mps asks for Apple's GPU, which this machine lacks; use cpu"
        return None if torch.backends.mps.is_available() else missing
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count == 0:
        return f"{value} asks for a CUDA GPU, and torch sees none on this machine; use cpu"
    bad = [int(i) for i in ids if int(i) >= count]
    if bad:
        return f"GPU {bad[0]} does not exist: torch sees {count} GPU(s), ids 0..{count - 1}"
    return None


def check_on_machine(c: object, value: object, key: str) -> None:
    """Check ``value`` against the machine marker ``c`` (any other marker passes).

    Raises:
        FieldError: The file is missing or not a regular file, the place is not writable, the device
            is not here, or the image size does not fit in memory.
    """
    if isinstance(c, ExistingFile) and not Path(value).is_file():
        if Path(value).exists():  # a folder, a device, a FIFO: named as what it is, never read
            raise FieldError(key, f"{value} is {file_kind(Path(value).stat().st_mode)}, not a regular file")
        raise FieldError(key, f"file not found: {value}")
    if isinstance(c, Writable):
        _check_writable(c, value, key)
    if isinstance(c, TorchDevice) and (problem := device_problem(value)):
        raise FieldError(key, problem)
    if isinstance(c, FitsMemory) and (problem := image_size_problem(value)):
        raise FieldError(key, f"{value}: {problem}")


def _check_writable(c: Writable, value: str, key: str) -> None:
    path = Path(value)
    if c.suffixes and not path.name.endswith(c.suffixes):
        raise FieldError(key, f"expected a file name ending in {' or '.join(c.suffixes)}, got {value!r}")
    if not c.suffixes and path.exists() and not path.is_dir():
        raise FieldError(key, f"{value} is a file; expected a folder")
    if c.suffixes and path.exists() and not path.is_file():  # a link to a device, a FIFO: never replaced
        raise FieldError(key, f"{value} is {file_kind(path.stat().st_mode)}, not a regular file; expected a file path")
    folder = path.parent if c.suffixes else path
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise FieldError(key, f"cannot write {value}: {folder} is a file, not a folder")
    problem = write_problem(folder)
    if problem:
        raise FieldError(key, f"cannot write {value}: the folder {folder} is not writable ({problem})")
