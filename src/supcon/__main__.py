"""``python -m supcon`` (and ``torchrun -m supcon``) runs the CLI."""

import sys

from supcon.cli import main

sys.exit(main())
