"""The one exception type for user mistakes.

The command-line entry points print a ``ToolchainError`` as one line, without a traceback, and
exit non-zero. Its message says what was expected, what was found, where, and the fix.
"""


class ToolchainError(Exception):
    """A mistake in the user's input (file, field, flag) that the user can fix."""


def report_errors(run, *args) -> int:
    """Call ``run(*args)`` for a command-line entry point: 0 on success, and a ``ToolchainError``
    printed as one ``error: ...`` line (no traceback) with exit status 1."""
    import sys

    try:
        code = run(*args)
    except ToolchainError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return code if isinstance(code, int) else 0
