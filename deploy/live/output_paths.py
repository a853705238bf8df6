"""Every output of live detection checked before the run: a display for ``--show``; for ``--save``,
``--json`` and ``--summary`` a known extension, a writable folder, and no clash with an input or
another output.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import cv2

from base.errors import UsageError
from base.fileio import check_output_file, check_output_folder, is_stdout

VIDEO_SUFFIXES = {".mp4": "mp4v", ".avi": "MJPG", ".mkv": "mp4v", ".mov": "mp4v"}


def save_is_video(save: str | Path) -> bool:
    """Whether ``--save`` names a video file (else an image folder).

    Raises:
        UsageError: An extension that is neither a known video container nor a folder.
    """
    save = Path(save)
    suffix = save.suffix.lower()
    if suffix in VIDEO_SUFFIXES:
        return True
    if save.is_dir() or not suffix:
        return False
    raise UsageError(
        f"--save {save}: unknown extension '{save.suffix}'; expected a video file "
        f"({', '.join(VIDEO_SUFFIXES)}) or a folder name without an extension for annotated images"
    )


def check_display() -> None:
    """Refuse ``--show`` where no window can open (OpenCV's GUI would abort the process).

    Raises:
        UsageError: No display, or an OpenCV built without a GUI.
    """
    fix = "run without --show (use --save out.mp4), or where a display is available"
    gui = next((ln.split(":", 1)[1].strip() for ln in cv2.getBuildInformation().splitlines() if "GUI:" in ln), "")
    if gui.upper() == "NONE":
        raise UsageError(f"--show: this OpenCV has no GUI (a headless build); {fix}")
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        raise UsageError(f"--show: no display (DISPLAY is not set); {fix} (ssh -X, or docker run -e DISPLAY)")


def check_outputs(
    show: bool = False, save: str | None = None, json_path: str | None = None, summary: str | None = None,
    inputs: tuple[str | Path, ...] = (),
) -> None:  # fmt: skip
    """Check every output before the run: a display for ``show``; for each path, a known extension,
    an existing writable folder, no clash with an input or another output.

    Raises:
        ToolchainError: Naming the flag, the path and the fix.
    """
    if show:
        check_display()
    named = {"--save": save, "--json": json_path, "--summary": summary}
    paths = {flag: Path(p) for flag, p in named.items() if p}
    if save:
        if save_is_video(save):
            check_output_file(save, "--save")
        elif Path(save).is_dir():
            check_output_folder(save, "--save")
        elif Path(save).exists():
            videos = ", ".join(VIDEO_SUFFIXES)
            raise UsageError(f"--save {save}: is a file; expected a folder for images or a video ({videos})")
        else:
            check_output_folder(Path(save).parent, "--save", save)
    for flag in ("--json", "--summary"):
        if flag in paths:
            check_output_file(paths[flag], flag)
    seen: dict[Path, str] = {Path(p).resolve(): "the input" for p in inputs if p and Path(p).exists()}
    for flag, path in paths.items():
        if is_stdout(path):
            continue
        clash = seen.get(path.resolve())
        if clash:
            raise UsageError(f"{flag} {path}: the same file as {clash}; it would be overwritten, choose another path")
        seen[path.resolve()] = flag
