"""`python -m cli` is the same as the `digits` console script."""

import sys

from cli.main import main

sys.exit(main())
