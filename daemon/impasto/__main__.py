"""``python -m impasto``: the same entry point as the ``impasto`` command."""

import sys

from impasto.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
