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


def test_a_session_whose_allocator_is_no_arena_runs_as_before(monkeypatch) -> None:
    """ORT refuses the release option where the CPU allocator is not an arena (an execution
    provider may choose so); such a session runs on without it instead of failing."""
    import numpy as np

    from impasto.engine import sessions
    from impasto.engine.providers import cpu_choice

    original = sessions.session_options

    def without_arena(*args: object, **kwargs: object) -> object:
        options = original(*args, **kwargs)  # type: ignore[arg-type]
        options.enable_cpu_mem_arena = False
        return options

    monkeypatch.setattr(sessions, "session_options", without_arena)
    decoder = REPO / "models" / "tiny" / "sd-tiny" / "vae_decoder" / "model.onnx"
    model = sessions.OrtModel(decoder, cpu_choice())
    latents = np.zeros((1, 4, 8, 8), np.float32)
    assert model.run({"latent_sample": latents}).shape == (1, 3, 64, 64)
    assert model._run_options is None  # dropped after ORT's refusal, not retried every call
    assert model.run({"latent_sample": latents}).shape == (1, 3, 64, 64)
