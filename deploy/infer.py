"""Live traffic-sign detection: ``python deploy/infer.py --engine model.int8.engine`` (default camera).

Sources: the default camera (no ``--source``), a camera index, an image, a folder, a video file, an
RTSP URL or a GStreamer pipeline. Outputs: ``--show`` (window), ``--save`` (video file or image
folder), ``--json`` (JSON lines), ``--summary`` (run summary JSON); every output path is checked
before the run. At the end (or on Ctrl-C / SIGTERM, which finalise the outputs) it prints frames,
FPS end to end and model only, and p50/p99 per stage.

Example:
    $ python deploy/infer.py --model runs/qat/demo/qat.int8.onnx --source video.mp4 --save out.mp4
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from deploy.live.app import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
