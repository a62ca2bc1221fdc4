"""`python -m pipeline [options]` runs one training flow, exactly like `digits train`."""

import sys

from cli.main import main

sys.exit(main(["train", *sys.argv[1:]]))
