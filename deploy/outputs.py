"""Where detections go: boxes and labels drawn on the frame, a window, a video or image folder, JSON lines.

Every output path is checked before the run (``check_outputs``) and every write while writing.
A video is written under a temporary name and renamed once it plays back, so its path holds a
complete recording or nothing; JSON lines are flushed a frame at a time to their own path. Ctrl-C
and SIGTERM finalise both.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

import cv2
import numpy as np

from base.errors import ToolchainError, UsageError, interrupts_deferred
from base.fileio import (
    atomic_path,
    check_output_file,
    check_output_folder,
    commit_temp,
    is_stdout,
    output_target,
    temp_path_beside,
)
from deploy.postprocess import Detections
from deploy.sources import Frame

logger = logging.getLogger(__name__)
VIDEO_SUFFIXES = {".mp4": "mp4v", ".avi": "MJPG", ".mkv": "mp4v", ".mov": "mp4v"}


def _colour(cls: int) -> tuple[int, int, int]:
    rng = np.random.default_rng(cls + 7)
    return tuple(int(c) for c in rng.integers(64, 256, 3))


def draw_detections(image: np.ndarray, dets: Detections, names: list[str], fps: float | None = None) -> np.ndarray:
    """Boxes, ``name score`` labels and an FPS counter drawn on a copy of ``image``."""
    out = image.copy()
    for (x0, y0, x1, y1), score, cls in zip(dets.boxes.astype(int), dets.scores, dets.classes):
        colour = _colour(int(cls))
        cv2.rectangle(out, (x0, y0), (x1, y1), colour, 2)
        label = f"{names[cls] if cls < len(names) else cls} {score:.2f}"
        (tw, th), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, 0.5, 1)
        cv2.rectangle(out, (x0, max(0, y0 - th - 4)), (x0 + tw + 2, y0), colour, -1)
        cv2.putText(out, label, (x0 + 1, max(th, y0 - 3)), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    if fps is not None:
        cv2.putText(out, f"{fps:.1f} FPS", (8, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (0, 255, 0), 2, cv2.LINE_AA)
    return out


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


class _VideoRecording:
    """A video written to a temporary file beside its final name, renamed once checked playable."""

    def __init__(self, path: Path, fps: float) -> None:
        self.path, self.fps, self.frames = output_target(path, "--save"), fps, 0  # a link: its target is replaced
        self.tmp: Path | None = None
        self.writer: cv2.VideoWriter | None = None
        self.size: tuple[int, int] | None = None

    def _open(self, image: np.ndarray) -> None:
        self.size = (image.shape[1], image.shape[0])
        self.tmp = temp_path_beside(self.path, keep_suffix=True)
        fourcc = VIDEO_SUFFIXES[self.path.suffix.lower()]
        self.writer = cv2.VideoWriter(str(self.tmp), cv2.VideoWriter_fourcc(*fourcc), self.fps, self.size)
        if not self.writer.isOpened():
            self.discard()
            raise ToolchainError(
                f"--save {self.path}: OpenCV cannot write {fourcc} video into a {self.path.suffix} file here; "
                "try .avi (MJPG) or an image folder"
            )

    def write(self, image: np.ndarray) -> None:
        if self.writer is None:
            self._open(image)
        if (image.shape[1], image.shape[0]) != self.size:
            image = cv2.resize(image, self.size)  # a frame of another size would be dropped without a word
        if self.writer.write(image) is False:  # OpenCV 5 reports a failed write; 4 returns None
            raise ToolchainError(f"--save {self.path}: writing frame {self.frames} failed; is the disk full?")
        self.frames += 1

    def finish(self) -> None:
        """Close the writer and move the video to its name, after checking that it plays."""
        if self.writer is None:
            return
        self.writer.release()
        self.writer = None
        if not self.frames:
            self.discard()
            return
        check = cv2.VideoCapture(str(self.tmp), cv2.CAP_ANY)
        readable = check.isOpened() and check.read()[0]
        check.release()
        if not readable:
            self.discard()
            raise ToolchainError(
                f"--save {self.path}: the recording of {self.frames} frames does not play back; is the disk full?"
            )
        commit_temp(self.tmp, self.path)
        logger.info("Saved %d frames to %s", self.frames, self.path)

    def discard(self) -> None:
        if self.writer is not None:
            self.writer.release()
            self.writer = None
        if self.tmp is not None:
            self.tmp.unlink(missing_ok=True)


class _JsonLines:
    """JSON lines written to ``path`` as they come (``tail -f`` follows a live run), one flushed line
    per frame; the file is created with the first line, so a run that fails before it leaves none."""

    def __init__(self, path: Path) -> None:
        self.path, self.lines = path, 0
        self.file = None

    def write(self, row: dict) -> None:
        try:
            if self.file is None:
                self.file = sys.stdout if is_stdout(self.path) else open(output_target(self.path, "--json"), "w",  # noqa: SIM115
                                                                          encoding="utf-8")  # closed in finish/discard
            self.file.write(json.dumps(row) + "\n")
            self.file.flush()
        except OSError as exc:
            raise ToolchainError(f"--json {self.path}: writing failed ({exc.strerror})") from exc
        self.lines += 1

    def finish(self) -> None:
        if self.file is None or self.file is sys.stdout:
            return
        try:
            self.file.close()
        except OSError as exc:
            raise ToolchainError(f"--json {self.path}: writing failed ({exc.strerror})") from exc

    def discard(self) -> None:
        """Close the file (whatever was written and flushed stays: each line is a whole frame)."""
        if self.file is not None and self.file is not sys.stdout and not self.file.closed:
            try:
                self.file.close()
            except OSError:
                pass  # finish() reported it


class Outputs:
    """The outputs asked for on the command line; ``close()`` finalises them (also on ``with`` exit).

    Args:
        names: Class names for the labels.
        show: Open a window (needs a display).
        save: A video file (``.mp4``, ``.avi``, ``.mkv``, ``.mov``) or a folder for annotated images.
        json_path: JSON lines, one object per frame with its detections.
        fps: Frame rate written into a saved video.
    """

    def __init__(
        self, names: list[str], show: bool = False, save: str | None = None, json_path: str | None = None,
        fps: float = 30.0,
    ) -> None:  # fmt: skip
        self.names, self.show, self.fps = names, show, fps
        self.save = Path(save) if save else None
        self.video = _VideoRecording(self.save, fps) if save and save_is_video(save) else None
        self.json = _JsonLines(Path(json_path)) if json_path else None
        self.images_saved = 0
        self.stopped_by: int | None = None  # the signal (Ctrl-C, SIGTERM) that arrived during a write
        self.written = 0  # frames every output holds, counted where no stop can land between write and count

    @property
    def draws(self) -> bool:
        return self.show or self.save is not None

    def write(self, frame: Frame, dets: Detections, fps: float | None) -> bool:
        """Send one frame's detections to every output; returns False when the window asks to quit or
        a Ctrl-C or SIGTERM arrived while writing (``stopped_by`` says which).

        Raises:
            ToolchainError: A write failed (full disk, folder removed...); the message names the output.
        """
        with interrupts_deferred(deliver=False) as stops:  # a stop lands between frames: all outputs agree
            keep_going = self._write(frame, dets, fps)
            self.written += 1
        if stops:
            self.stopped_by = stops[0]
            return False
        return keep_going

    def _write(self, frame: Frame, dets: Detections, fps: float | None) -> bool:
        if self.json:
            rows = [{"box": [round(float(v), 1) for v in b], "score": round(float(s), 4), "class": int(c),
                     "name": self.names[c] if c < len(self.names) else str(c)}
                    for b, s, c in zip(dets.boxes, dets.scores, dets.classes)]  # fmt: skip
            self.json.write({"frame": frame.index, "source": frame.name, "detections": rows})
        if not self.draws:
            return True
        image = draw_detections(frame.image, dets, self.names, fps)
        if self.video is not None:
            self.video.write(image)
        elif self.save is not None:
            self._save_image(image, frame)
        if self.show:
            cv2.imshow("detections", image)
            return (cv2.waitKey(1) & 0xFF) not in (ord("q"), 27)
        return True

    def _save_image(self, image: np.ndarray, frame: Frame) -> None:
        path = self.save / f"{Path(frame.name).stem}_{frame.index:06d}.jpg"
        ok, data = cv2.imencode(".jpg", image)
        if not ok:
            raise ToolchainError(f"--save {path}: OpenCV could not encode the frame as JPEG")
        try:
            self.save.mkdir(exist_ok=True)
            with atomic_path(path, flag="--save") as tmp:
                tmp.write_bytes(data.tobytes())
        except OSError as exc:
            raise ToolchainError(f"--save {path}: writing failed ({exc.strerror})") from exc
        self.images_saved += 1

    def close(self) -> None:
        """Finalise the video and JSON lines (renamed to their names) and close the window.

        Raises:
            ToolchainError: The video or JSON file could not be finished (the first such error).
        """
        outputs, self.video, self.json = [o for o in (self.video, self.json) if o is not None], None, None
        errors = []
        for output in outputs:
            try:
                output.finish()
            except ToolchainError as exc:
                errors.append(exc)
            finally:
                output.discard()  # removes the temporary file unless finish() renamed it
        if self.show:
            cv2.destroyAllWindows()
        if errors:
            raise errors[0]

    def __enter__(self) -> Outputs:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None or issubclass(exc_type, KeyboardInterrupt):
            self.close()
            return
        try:
            self.close()  # keep what was recorded before the failure
        except ToolchainError as close_error:
            logger.warning("%s", close_error)  # the failure in flight is the one to report
