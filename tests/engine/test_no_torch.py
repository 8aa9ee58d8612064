"""A generation in a fresh interpreter imports no torch, diffusers, optimum or transformers."""

from __future__ import annotations

import json
import subprocess
import sys

from .conftest import SD_TINY

SCRIPT = """
import json, sys
from impasto.engine import GenerationParams, load_pipeline, select_providers
pipe = load_pipeline(sys.argv[1], select_providers())
out = pipe.generate(GenerationParams(prompt="a cat", width=64, height=64, steps=2, seed=1))
heavy = sorted(m for m in sys.modules if m.split(".")[0] in
               {"torch", "diffusers", "optimum", "transformers"})
print(json.dumps({"heavy": heavy, "size": out[0].image.size, "seed": out[0].seed}))
"""


def test_generation_imports_no_torch() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(SD_TINY)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report == {"heavy": [], "size": [64, 64], "seed": 1}
