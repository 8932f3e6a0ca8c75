"""`python -m gmdsl`: the same as the `gmdsl` command."""

import sys

from .cli import main

sys.exit(main())
