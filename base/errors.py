"""The one exception type for user mistakes, and the one error path of every entry point.

Every command-line entry point (``toolchain``, ``deploy/infer.py``, ``deploy.engine.build``,
``check-qdq``, ``deploy.entrypoint``, ``benchmarks.run``) runs its work through ``report_errors``,
which prints a ``ToolchainError`` as one ``error: ...`` line on stderr, without a traceback, and
turns what happened into the exit status:

====  ===========================================================================================
0     success
1     a runtime failure or a mistake in an input file (``ToolchainError``; ``OSError`` on an
      output: full disk, read-only folder); check-qdq also exits 1 when a model breaks a rule
2     a usage mistake: a flag or config value (``UsageError``; argparse's own errors are 2 too)
130   Ctrl-C (SIGINT): outputs finalised, summary printed
143   SIGTERM (``docker stop``): handled like Ctrl-C, outputs finalised, summary printed
====  ===========================================================================================

Example:
    >>> def main(argv=None) -> int:
    ...     args = build_parser().parse_args(argv)
    ...     return report_errors(run, args)
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 128 + signal.SIGINT  # 130
EXIT_TERMINATED = 128 + signal.SIGTERM  # 143


class ToolchainError(Exception):
    """A mistake in the user's input (file, field, flag) that the user can fix; exit status 1."""

    exit_code = EXIT_FAILURE


class UsageError(ToolchainError):
    """A mistake in a flag or a config value; exit status 2, like argparse's own errors."""

    exit_code = EXIT_USAGE


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread like Ctrl-C so that every ``finally`` and ``except
    KeyboardInterrupt`` that finalises outputs runs for ``docker stop`` too."""


class _SigtermState:
    received = False
    owner = 0  # the pid that installed the handler


def _raise_terminated(signum: int, frame: object) -> None:
    if os.getpid() != _SigtermState.owner:
        # A forked child (a multiprocessing or DataLoader worker) inherited the handler: a pool ends its
        # workers with SIGTERM, which must end them quietly, not raise into their loop with a traceback.
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)
        return
    if _SigtermState.received:
        return  # one stop request is enough; a second must not interrupt the finalising
    _SigtermState.received = True
    raise Terminated


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """While inside, SIGTERM raises ``Terminated`` (a ``KeyboardInterrupt``) in the main thread.

    Without a handler, SIGTERM kills the process at once (or, for PID 1 in a container, is
    ignored until ``docker stop`` sends SIGKILL): writers are not finalised and temporary files
    stay. Outside the main thread (where Python cannot install handlers) this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    _SigtermState.received, _SigtermState.owner = False, os.getpid()
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def interrupts_deferred(deliver: bool = True) -> Iterator[list[int]]:
    """Hold Ctrl-C and SIGTERM back until the block ends; yields the list of signals held.

    Writing one frame to several outputs (video, JSON lines) inside this block means that a stop
    request lands between frames, so every output holds the same frames. At the end the held
    signal is delivered (``deliver``), or left to the caller, who reads the yielded list and
    stops on its own (a SIGTERM still makes ``report_errors`` exit 143). Outside the main thread
    this does nothing (signals are handled in the main thread only).
    """
    pending: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield pending
        return
    stops = (signal.SIGINT, signal.SIGTERM)
    previous = {s: signal.signal(s, lambda signum, frame: pending.append(signum)) for s in stops}
    try:
        yield pending
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        if pending and deliver:
            signal.raise_signal(pending[0])  # the restored handler raises it in this thread right away
        elif signal.SIGTERM in pending and previous[signal.SIGTERM] is _raise_terminated:
            _SigtermState.received = True  # the caller stops; the exit status still says SIGTERM


def _os_error_line(exc: OSError) -> str:
    where = f"{exc.filename}: " if exc.filename else ""
    return f"{where}{exc.strerror or exc}"


def report_errors(run: Callable[..., object], *args: object) -> int:
    """Call ``run(*args)`` for a command-line entry point and return its exit status.

    ``run`` may return an int (its exit status) or anything else (0). A ``ToolchainError`` or an
    ``OSError`` (a full disk, a read-only folder) is printed as one ``error: ...`` line; Ctrl-C and
    SIGTERM print one ``interrupted``/``terminated`` line unless ``run`` finished its own summary.
    A run that received SIGTERM exits 143 however it ended.

    Returns:
        The exit status (see the module's table).
    """
    with sigterm_as_interrupt():
        try:
            code = run(*args)
        except ToolchainError as exc:
            print(f"error: {exc}", file=sys.stderr)
            code = exc.exit_code
        except OSError as exc:
            print(f"error: {_os_error_line(exc)}", file=sys.stderr)
            code = EXIT_FAILURE
        except KeyboardInterrupt as exc:
            terminated = isinstance(exc, Terminated)
            print("terminated (SIGTERM)" if terminated else "interrupted (Ctrl-C)", file=sys.stderr)
            code = EXIT_TERMINATED if terminated else EXIT_INTERRUPTED
    if _SigtermState.received:
        return EXIT_TERMINATED
    return code if isinstance(code, int) else EXIT_OK
