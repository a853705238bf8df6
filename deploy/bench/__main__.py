"""``python -m deploy.bench``: see ``deploy.bench.cli``."""

from __future__ import annotations

import sys

from deploy.bench.cli import main

if __name__ == "__main__":
    sys.exit(main())
