"""The one exception type for user mistakes.

The command-line entry points print a ``ToolchainError`` as one line, without a traceback, and
exit non-zero. Its message says what was expected, what was found, where, and the fix.
"""


class ToolchainError(Exception):
    """A mistake in the user's input (file, field, flag) that the user can fix."""
