"""Seamless tiling's limits, checked when a request is resolved (before it is queued), by the
engine's own rule."""

from __future__ import annotations

import json
from pathlib import Path

from impasto.engine.padding import size_multiple
from impasto.engine.types import InvalidRequestError
from impasto.engine.validation import check_tiling
from impasto.services.errors import FieldError
from impasto.wire import ResolvedPlan


def check_seamless(plan: ResolvedPlan, model_dir: Path) -> None:
    """A 422 naming the field that cannot go with ``tiling``, or a size the model's UNet does
    not divide whole (read from its ``unet/config.json``)."""
    if not plan.tiling:
        return
    try:
        config = json.loads((model_dir / "unet" / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        config = {}
    try:
        check_tiling(plan, size_multiple(config if isinstance(config, dict) else {}))
    except InvalidRequestError as exc:
        raise FieldError(exc.field, exc.message) from None
