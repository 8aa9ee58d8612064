"""``python -m impasto.worker``: the worker without the CLI in front of it."""

import sys

from impasto.worker.main import run_worker

if __name__ == "__main__":
    sys.exit(run_worker(sys.argv[1:]))
