"""``python -m benchmark``: the command-line entry point."""

import sys

from benchmark.cli import main

sys.exit(main())
