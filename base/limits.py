"""Limits on what is read, so that no input can hang or exhaust the machine: regular files only, with
a size cap; YAML whose aliases expand to a bounded size; class counts and image sizes that memory can
hold (estimated from the memory this machine has, and said so in the message).

Example:
    >>> data = read_bounded("labels/a.txt", "label file", MAX_TEXT_BYTES)
    >>> image_size_problem(640)  # None where memory holds it
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from base.errors import ToolchainError

MAX_TEXT_BYTES = 64 * 2**20
"""A YAML, label file, image list or sidecar: far above any real one (a label file of a 100-box image is 4 KiB)."""
MAX_IMAGE_BYTES = 512 * 2**20
"""One image file: a 16k x 16k PNG is about 750 MiB raw but far less compressed."""
MAX_YAML_VALUES = 1_000_000
"""Values a YAML document may expand to, aliases counted each time they are used (a billion-laughs
document of 1 KiB expands to 10^9)."""
ACTIVATION_FACTOR = 64
"""Bytes of activations per input byte a YOLOv8n forward holds at once (measured peak RSS over input
size at 640 px: about 40), with headroom."""
BYTES_PER_CLASS = 4 * 8400 * 8
"""A class's share of one image's head output at 640 px (8400 anchors, float32), times 8 for the
copies decoding and NMS make."""


def file_kind(mode: int) -> str:
    """What a ``stat`` mode is, in words: a folder, a character device, a FIFO..."""
    kinds = ((stat.S_ISDIR, "a folder"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
             (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"))  # fmt: skip
    return next((name for test, name in kinds if test(mode)), "not a regular file")


def read_bounded(path: str | Path, what: str, max_bytes: int, error: type[ToolchainError] = ToolchainError) -> bytes:
    """The bytes of a regular file (symlinks followed) of at most ``max_bytes``.

    Raises:
        ToolchainError: (or ``error``) One line naming the file: missing or unreadable, not a regular
            file (a device, FIFO or socket would be read without end), or over the cap.
    """
    path = Path(path)
    try:
        info = path.stat()
    except OSError as exc:
        raise error(f"{path}: {what} cannot be read ({exc.strerror})") from None
    if not stat.S_ISREG(info.st_mode):
        raise error(f"{path}: {what} is {file_kind(info.st_mode)}, not a regular file")
    too_big = f"{path}: {what} is over the {max_bytes / 2**20:.0f} MiB limit for it; is this the right file?"
    if info.st_size > max_bytes:
        raise error(too_big)
    try:
        with open(path, "rb") as f:
            data = f.read(max_bytes + 1)  # a file that grows while it is read stops at the cap too
    except OSError as exc:
        raise error(f"{path}: {what} cannot be read ({exc.strerror})") from None
    if len(data) > max_bytes:
        raise error(too_big)
    return data


def expanded_size(value: object, limit: int = MAX_YAML_VALUES) -> int:
    """How many values ``value`` holds with every shared (aliased) part counted each time it is used,
    computed without expanding it; stops counting past ``limit``.

    Raises:
        ValueError: ``value`` contains itself (a recursive YAML alias).
    """
    sizes: dict[int, int] = {}
    active: set[int] = set()

    def size(v: object) -> int:
        if not isinstance(v, (list, dict)):
            return 1
        key = id(v)
        if key in sizes:
            return sizes[key]
        if key in active:
            raise ValueError("contains itself")
        active.add(key)
        children = list(v.keys()) + list(v.values()) if isinstance(v, dict) else v
        total = 1
        for child in children:
            total = min(limit + 1, total + size(child))
        active.discard(key)
        sizes[key] = total
        return total

    return min(limit + 1, size(value))


def available_memory() -> int:
    """Bytes of memory this machine has available (``MemAvailable``; physical memory elsewhere)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 8 * 2**30


def max_image_size(memory: int | None = None) -> int:
    """The largest square input side whose float32 batch of one and its activations fit in memory."""
    memory = available_memory() if memory is None else memory
    return int((memory / (3 * 4 * ACTIVATION_FACTOR)) ** 0.5) // 32 * 32


def image_size_problem(imgsz: int, memory: int | None = None) -> str | None:
    """Why memory cannot hold a ``imgsz`` square input (``None`` where it can), with the estimate."""
    memory = available_memory() if memory is None else memory
    bound = max_image_size(memory)
    if imgsz <= bound:
        return None
    return (f"a {imgsz}x{imgsz} input needs about {3 * 4 * ACTIVATION_FACTOR * imgsz**2 / 2**30:.0f} GiB for one "
            f"image's activations, and this machine has {memory / 2**30:.1f} GiB available (at most {bound}); "
            "YOLOv8 is trained at 320-1280")  # fmt: skip


def max_classes(memory: int | None = None) -> int:
    """The most classes whose head outputs and NMS copies for one 640 px image fit in memory."""
    memory = available_memory() if memory is None else memory
    return max(1, int(memory // BYTES_PER_CLASS))


def check_class_count(nc: int, where: str, memory: int | None = None) -> int:
    """Refuse a class count memory cannot hold, in one line with the estimate.

    Raises:
        ToolchainError: Naming ``where``, the count, the bound and how it was estimated.
    """
    memory = available_memory() if memory is None else memory
    bound = max_classes(memory)
    if nc > bound:
        raise ToolchainError(
            f"{where}: {nc} classes; one 640 px image's head outputs alone would take about "
            f"{nc * BYTES_PER_CLASS / 2**30:.0f} GiB, and this machine has {memory / 2**30:.1f} GiB available "
            f"(at most {bound} classes)"
        )
    return nc
