"""A call gives back the working memory ORT's CPU arena grew by, instead of keeping it for as
long as the model stays loaded (bench/arena.py measures it on the SD 1.5 shape)."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.harness import REPO
from tests.tools import linux_only

UNET = REPO / "models" / "tiny" / "impasto-shapes" / "unet" / "model.onnx"
CHILD = """
import json, os, sys
from pathlib import Path
import numpy as np
from impasto.engine.providers import cpu_choice
from impasto.engine.sessions import OrtModel

def rss():
    with open("/proc/self/statm", encoding="ascii") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

model = OrtModel(Path(sys.argv[1]), cpu_choice())
rng = np.random.default_rng(0)
width = model.input("encoder_hidden_states").shape[2]
feeds = {  # 1024x1024 at batch 2: eight times the pixels this model draws
    "sample": rng.standard_normal((2, 4, 128, 128), np.float32),
    "encoder_hidden_states": rng.standard_normal((2, 77, width), np.float32),
    "timestep": np.full([2] if model.input("timestep").shape else [], 500, np.float32),
}
before = rss()
if sys.argv[2] == "engine":
    model.run(feeds)
else:  # the same session, called as ORT's default run does
    model.session.run(None, model._cast(feeds))
print(json.dumps(rss() - before))
"""


def _kept(way: str) -> int:
    done = subprocess.run(
        [sys.executable, "-P", "-c", CHILD, str(UNET), way], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return int(json.loads(done.stdout.splitlines()[-1]))


def test_a_large_call_leaves_no_arena_behind() -> None:
    linux_only("reads the resident size from /proc")
    kept_by_default = _kept("default")
    kept = _kept("engine")
    mib = 1024**2
    assert kept_by_default > 40 * mib, kept_by_default / mib  # the arena this guards against
    assert kept < kept_by_default / 4, (kept / mib, kept_by_default / mib)
