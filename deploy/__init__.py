"""Deploy half of the toolchain: torch-free inference, evaluation and engines.

Only numpy, OpenCV, PyYAML, pycocotools and the runtimes (ONNX Runtime, OpenVINO, TensorRT) are
used here, each runtime imported lazily. Nothing in this package imports ``toolchain``, torch or
ultralytics, so a Jetson container runs it with what JetPack ships plus numpy and OpenCV.
"""

from base.errors import ToolchainError

__all__ = ["ToolchainError"]
