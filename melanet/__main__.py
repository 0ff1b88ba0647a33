"""``python -m melanet`` is the same as the ``melanet`` console script."""

import sys

from melanet.cli import console_main

sys.exit(console_main())
