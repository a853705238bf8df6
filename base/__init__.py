"""The torch-free base both halves import: user errors, file I/O (atomic writes, the output policy),
read limits, the model sidecar and YOLO dataset reading.

Only numpy, OpenCV and PyYAML are used here. ``toolchain`` (training) and ``deploy`` (the application)
import this package; it imports neither of them, nor torch.
"""
