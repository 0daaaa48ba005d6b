"""``python -m bridge``: the command line (bridge/cli.py)."""

import sys

from bridge.cli import main

sys.exit(main())
