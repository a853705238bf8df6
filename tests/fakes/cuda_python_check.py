"""The cuda-python runner paths against whichever cuda-python comes first on ``sys.path``.

cuda-python versions cannot live side by side in one process, so tests run this in a subprocess
with an older one first on PYTHONPATH (the venv keeps 13.x for torch):

    $ PYTHONPATH=.venv/cuda-bindings/11.8:. python -m tests.fakes.cuda_python_check [--plant-12x-call]

``--plant-12x-call`` also runs it with ``cudaGraphInstantiate(graph, 0)``, the 12.x signature, swapped in,
which fails on 11.8's real module. Prints each outcome; exit status 0 when the unplanted run passed.
"""

from __future__ import annotations

import contextlib
import sys
import tempfile
from pathlib import Path

from tests.fakes.paths import run_path
from tests.fakes.plant import planted

PLANT = ("deploy.engine.cuda", "self.cudart.cudaGraphInstantiateWithFlags(graph, 0)",
         "self.cudart.cudaGraphInstantiate(graph, 0)")  # fmt: skip


def run(plant: bool) -> str:
    """One run of the paths; the outcome as a line."""
    version = "?"
    try:
        with planted(*PLANT) if plant else contextlib.nullcontext(), tempfile.TemporaryDirectory() as tmp:
            for name in ("runner_v3_cuda_python", "cuda_graphs"):
                (Path(tmp) / name).mkdir()
                version = run_path("10.3", name, Path(tmp) / name).cuda_python
    except Exception as exc:  # noqa: BLE001 - the outcome is the output
        return f"FAILED {type(exc).__name__}: {exc}"
    return f"cuda-python {version}: runner and CUDA graph paths passed"


def main(argv: list[str]) -> int:
    plain = run(plant=False)
    print(plain)
    if "--plant-12x-call" in argv:
        print(f"with cudaGraphInstantiate(graph, 0): {run(plant=True)}")
    return 0 if "FAILED" not in plain else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
