"""``python -m omnissl.cli``."""

import sys

from omnissl.cli.main import main

sys.exit(main())
