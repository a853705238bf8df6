"""The subcommands of ``toolchain``: each module lists its ``Command``s (config class, run function, short flags)."""

from toolchain.commands import analyze, data, evaluate, export, quantize, train

COMMANDS = {c.name: c for m in (data, train, export, quantize, evaluate, analyze) for c in m.COMMANDS}
