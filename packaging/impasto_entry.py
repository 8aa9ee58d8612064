"""The Nuitka entry point of the single `impasto` binary: the CLI with every subcommand."""

import sys

from impasto.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
