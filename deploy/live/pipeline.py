"""The live detection loop, pipelined: capture and preprocessing, inference and decoding, and the
outputs run in three threads joined by bounded queues, so the model never waits on the camera or the
video writer. A live source drops its oldest waiting frame rather than queueing without bound.

Example:
    >>> with open_source("video.mp4") as src, create_runner("m.onnx", "openvino") as runner, Outputs(names) as out:
    ...     summary = run_pipeline(src, runner, out, PipelineConfig(imgsz=(640, 640)))
    >>> print(summary.table())
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from deploy.live.outputs import Outputs
from deploy.live.sources import FrameSource
from deploy.postprocess import END_TO_END_OUTPUTS, PostprocessConfig, from_end_to_end, postprocess
from deploy.preprocess import Preprocessor
from deploy.runtime.base import Runner

logger = logging.getLogger(__name__)
_END = object()
STAGES = ("capture", "preprocess", "inference", "postprocess", "output")


@dataclass(frozen=True)
class PipelineConfig:
    """Sizes and thresholds of the live loop.

    Attributes:
        imgsz: Network input ``(height, width)``.
        post: Decode and NMS thresholds (live defaults: conf 0.25, one class per box).
        queue_size: Frames waiting between two stages.
    """

    imgsz: tuple[int, int]
    post: PostprocessConfig = PostprocessConfig(conf=0.25, iou=0.7, multi_label=False)
    queue_size: int = 4


@dataclass
class PipelineSummary:
    """What a run did: frames, drops, end-to-end and model-only FPS, and time per stage."""

    frames: int = 0
    dropped: int = 0
    seconds: float = 0.0
    interrupted: bool = False
    end_to_end: bool = False
    stage_ms: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    @property
    def model_fps(self) -> float:
        times = self.stage_ms.get("inference") or [0.0]
        return 1000.0 / float(np.mean(times)) if np.mean(times) > 0 else 0.0

    def host_ms(self) -> dict[str, float]:
        """Mean ms per frame of host pre- and post-processing, their sum, and inference beside them."""
        mean = {s: float(np.mean(self.stage_ms[s])) if self.stage_ms.get(s) else 0.0
                for s in ("preprocess", "postprocess", "inference")}  # fmt: skip
        return {**mean, "host": mean["preprocess"] + mean["postprocess"]}

    def host_line(self) -> str:
        """One line: host ms per frame against the engine's (inference) ms."""
        ms = self.host_ms()
        share = f" = {100 * ms['host'] / ms['inference']:.0f}% of inference" if ms["inference"] > 0 else ""
        where = " (end-to-end graph: decode and NMS inside inference)" if self.end_to_end else ""
        return (f"  host per frame: preprocess {ms['preprocess']:.2f} + postprocess {ms['postprocess']:.2f} = "
                f"{ms['host']:.2f} ms against inference {ms['inference']:.2f} ms (mean){share}{where}")  # fmt: skip

    def table(self) -> str:
        lines = [
            f"{self.frames} frames in {self.seconds:.2f} s: {self.fps:.1f} FPS end to end, "
            f"{self.model_fps:.1f} FPS model only ({100 * self.fps / max(self.model_fps, 1e-9):.0f}%), "
            f"{self.dropped} late frames dropped" + (" (interrupted)" if self.interrupted else "")
        ]
        for stage in STAGES:
            t = self.stage_ms.get(stage)
            if t:
                lines.append(f"  {stage:<12} p50 {np.percentile(t, 50):7.2f} ms  p99 {np.percentile(t, 99):7.2f} ms")
        if self.stage_ms.get("inference"):
            lines.append(self.host_line())
        return "\n".join(lines)

    def to_dict(self) -> dict:
        stages = {s: {"p50_ms": float(np.percentile(t, 50)), "p99_ms": float(np.percentile(t, 99))}
                  for s, t in self.stage_ms.items() if t}  # fmt: skip
        return {"frames": self.frames, "dropped": self.dropped, "seconds": self.seconds, "fps": self.fps,
                "model_fps": self.model_fps, "interrupted": self.interrupted, "stages": stages,
                "host_ms_per_frame": self.host_ms(), "end_to_end": self.end_to_end}  # fmt: skip


class _StopError(Exception):
    pass


def _put(q: queue.Queue, item, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            q.put(item, timeout=0.1)
            return
        except queue.Full:
            continue
    raise _StopError


def _get(q: queue.Queue, stop: threading.Event):
    while not stop.is_set():
        try:
            return q.get(timeout=0.1)
        except queue.Empty:
            continue
    raise _StopError


class _Worker(threading.Thread):
    def __init__(self, target, stop: threading.Event, errors: list) -> None:
        super().__init__(daemon=True)
        self._target_fn, self._stop_event, self._errors = target, stop, errors

    def run(self) -> None:
        try:
            self._target_fn()
        except _StopError:
            pass
        except BaseException as exc:  # surfaced in the main thread
            self._errors.append(exc)
            self._stop_event.set()


def run_pipeline(source: FrameSource, runner: Runner, outputs: Outputs, cfg: PipelineConfig) -> PipelineSummary:
    """Run the three stages until the source ends, the window is closed, or Ctrl-C.

    Frames are letterboxed into ``queue_size + 2`` input buffers made once (``runner.host_buffer``) and
    handed back when inferred or dropped; an end-to-end model (``runner.end_to_end``) gets the uint8
    canvas itself and its detections are only mapped back.

    Raises:
        The first exception of any stage (after every thread has stopped).
    """
    e2e = runner.end_to_end
    summary = PipelineSummary(end_to_end=e2e)
    frames_q: queue.Queue = queue.Queue(cfg.queue_size)
    results_q: queue.Queue = queue.Queue(cfg.queue_size)
    stop, errors = threading.Event(), []
    lock = threading.Lock()
    slots = cfg.queue_size + 2  # waiting in the queue, being inferred, being filled
    prep = Preprocessor(cfg.imgsz, uint8_nhwc=e2e, slots=slots, allocate=runner.host_buffer)
    free: queue.Queue = queue.Queue()
    for slot in range(slots):
        free.put(slot)
    names = runner.output_names or list(END_TO_END_OUTPUTS)

    def capture() -> None:
        it = iter(source)
        while not stop.is_set():
            t0 = time.perf_counter()
            frame = next(it, None)
            if frame is None:
                break
            slot = _get(free, stop)
            t1 = time.perf_counter()
            batch, metas = prep([frame.image], slot=slot)
            with lock:
                summary.stage_ms["capture"].append((t1 - t0) * 1e3)
                summary.stage_ms["preprocess"].append((time.perf_counter() - t1) * 1e3)
            if source.live and frames_q.full():
                try:
                    free.put(frames_q.get_nowait()[3])  # drop the oldest waiting frame: a live view never lags
                    summary.dropped += 1
                except queue.Empty:
                    pass
            _put(frames_q, (frame, batch, metas, slot), stop)
        _put(frames_q, _END, stop)

    def infer() -> None:
        while True:
            item = _get(frames_q, stop)
            if item is _END:
                _put(results_q, _END, stop)
                return
            frame, batch, metas, slot = item
            t0 = time.perf_counter()
            preds = runner.infer(batch)
            free.put(slot)
            t1 = time.perf_counter()
            if e2e:
                dets = from_end_to_end(dict(zip(names, preds)), metas, cfg.post)[0]
            else:
                dets = postprocess(preds[0], metas, cfg.post)[0]
            with lock:
                summary.stage_ms["inference"].append((t1 - t0) * 1e3)
                summary.stage_ms["postprocess"].append((time.perf_counter() - t1) * 1e3)
            _put(results_q, (frame, dets), stop)

    workers = [_Worker(capture, stop, errors), _Worker(infer, stop, errors)]
    start = time.perf_counter()
    for w in workers:
        w.start()
    try:
        while True:
            item = _get(results_q, stop)
            if item is _END:
                break
            frame, dets = item
            t0 = time.perf_counter()
            fps = summary.frames / (t0 - start) if summary.frames else None
            keep_going = outputs.write(frame, dets, fps)
            summary.stage_ms["output"].append((time.perf_counter() - t0) * 1e3)
            summary.frames += 1
            if not keep_going:
                break
    except _StopError:
        pass
    except KeyboardInterrupt:
        summary.interrupted = True
    finally:
        summary.seconds = time.perf_counter() - start
        # a Ctrl-C between a finished write and the count above: the outputs' own count is the truth
        summary.frames = getattr(outputs, "written", summary.frames)
        stop.set()
        for w in workers:
            w.join(timeout=5)
    if errors:
        raise errors[0]
    return summary
