"""Live detection: frame sources, the pipelined loop, the outputs, and the application that wires them
for the thin scripts ``deploy/infer.py`` and ``deploy/entrypoint.py``."""
