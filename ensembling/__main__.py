"""``python -m ensembling``: see ``ensembling.cli``."""

from __future__ import annotations

import sys

from ensembling.cli import main

if __name__ == "__main__":
    sys.exit(main())
