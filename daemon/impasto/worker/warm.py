"""``impasto worker --warm MODEL_DIR``: open a model once so its optimised graphs are cached.

The install runs this as its last step, with the workers' own arguments, so the provider, the
optimisation level and the cache folder are exactly those a worker will open the model with:
the first generation after an install then opens the saved copies (about a second for an
SD 1.5 UNet) instead of paying ONNX Runtime's whole graph optimisation.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

log = logging.getLogger("impasto.worker")


def warm(model_dir: Path, choice: object, cache_dir: Path | None) -> int:
    """Open every session of ``model_dir`` with the session cache, then close them; exit code."""
    from impasto.engine import EngineError, load_pipeline
    from impasto.engine.providers import ProviderChoice

    assert isinstance(choice, ProviderChoice)
    if cache_dir is None or not choice.cache_optimized:
        log.info("%s: nothing to cache (%s keeps no optimised copies)", model_dir, choice.name)
        return 0
    start = time.perf_counter()
    try:
        pipe = load_pipeline(model_dir, choice, cache_dir=cache_dir)
    except EngineError as exc:
        log.warning("%s: not cached: %s", model_dir, exc)
        return 1
    pipe.close()
    log.info("%s: optimised graphs cached in %.1f s", model_dir, time.perf_counter() - start)
    return 0
