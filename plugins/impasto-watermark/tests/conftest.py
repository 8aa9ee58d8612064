"""Lets these tests import the repository's tests.harness (the real-daemon helper)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
