"""``python -m bootstrap HOST…``: the exit status comes from :func:`bootstrap.cli.main` (its error boundary)."""

import sys

from bootstrap.cli import main

sys.exit(main())
