"""Build-time check of the GPU image: exactly one ONNX Runtime distribution, onnxruntime-gpu, with its CUDA provider.

onnxruntime and onnxruntime-gpu install the same ``onnxruntime`` package; with both present, whichever was
installed last wins file by file and the CUDA provider can disappear. Exits 1 with one line saying what is wrong.
"""

from __future__ import annotations

import importlib.metadata
import sys


def onnxruntime_distributions() -> list[str]:
    """Names of the installed distributions that provide ONNX Runtime."""
    names = {d.metadata["Name"].lower() for d in importlib.metadata.distributions() if d.metadata["Name"]}
    return sorted(n for n in names if n.startswith("onnxruntime"))


def problem(expected: str = "onnxruntime-gpu", provider: str = "CUDAExecutionProvider") -> str | None:
    """What is wrong with this environment's ONNX Runtime, or None."""
    found = onnxruntime_distributions()
    if found != [expected]:
        return f"expected only {expected} installed, found {found or 'none'}"
    import onnxruntime

    if provider not in onnxruntime.get_available_providers():
        return f"{expected} is installed but has no {provider} (providers: {onnxruntime.get_available_providers()})"
    return None


def main(argv: list[str] | None = None) -> int:
    """``python check_onnxruntime.py [DISTRIBUTION [PROVIDER]]`` (default: onnxruntime-gpu, CUDAExecutionProvider)."""
    args = list(sys.argv[1:] if argv is None else argv)
    expected, provider = (args + ["onnxruntime-gpu", "CUDAExecutionProvider"][len(args) :])[:2]
    message = problem(expected, provider)
    if message:
        print(f"check_onnxruntime: {message}", file=sys.stderr)
        return 1
    print(f"check_onnxruntime: {expected} only, {provider} present")
    return 0


if __name__ == "__main__":
    sys.exit(main())
