"""`python -m flows.cli`: the `vid2vid` command."""

import sys

from flows.cli import main

sys.exit(main())
