"""The one error path: a forked worker that inherits the SIGTERM handler still ends quietly on SIGTERM."""

from __future__ import annotations

import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import multiprocessing, os, signal, sys, time
    from base.errors import report_errors

    def child(ready):
        ready.set()
        while True:  # Python code running when the signal lands, as in a pool worker
            time.sleep(0.01)

    def run():
        ready = multiprocessing.get_context("fork").Event()
        proc = multiprocessing.get_context("fork").Process(target=child, args=(ready,))
        proc.start()
        ready.wait(10)
        os.kill(proc.pid, signal.SIGTERM)  # what Pool.terminate() sends its workers
        proc.join(10)
        print("child exit", proc.exitcode)
        return 0

    sys.exit(report_errors(run))
    """
)


def test_forked_worker_ends_on_sigterm_without_traceback():
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr and "Terminated" not in done.stderr, done.stderr
    assert f"child exit -{15}" in done.stdout  # killed by the signal, as without our handler
