"""The subcommands of ``toolchain``: each module gives ``add_arguments`` and ``run`` pairs in ``COMMANDS``."""

from toolchain.commands import data, evaluate, quantize, train

COMMANDS = {**data.COMMANDS, **train.COMMANDS, **quantize.COMMANDS, **evaluate.COMMANDS}
