"""The subcommands of ``toolchain``: each module lists its ``Command``s (config class, run function, short flags)."""

from toolchain.commands import data, evaluate, export, quantize, train

COMMANDS = {c.name: c for m in (data, train, export, quantize, evaluate) for c in m.COMMANDS}
