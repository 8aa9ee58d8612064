"""Housekeeping that keeps a long-running daemon's data bounded, run at start and every hour.

Uploads stay while a queued or running job may read them, then the retention period
(``upload_retention_hours``); finished jobs stay in the history up to ``max_history`` of them.
"""

from __future__ import annotations

import asyncio
import logging
import time

from impasto.services.container import Services

log = logging.getLogger("impasto.retention")

SWEEP_EVERY = 3600.0  # seconds between sweeps of the uploads folder and the history


def sweep_uploads(services: Services, retention_hours: float, now: float | None = None) -> int:
    """Remove the uploads no queued or running job names that were last written more than
    ``retention_hours`` ago; returns how many (blocking: the queue's SQL and the folder)."""
    older_than = (time.time() if now is None else now) - retention_hours * 3600
    return services.uploads.sweep(older_than, services.jobs.uploads_in_use())


async def sweep_uploads_forever(
    services: Services, retention_hours: float, every: float = SWEEP_EVERY
) -> None:
    """Sweep the uploads (``retention_hours``; 0 keeps them for ever) and trim the history
    (the ``max_history`` setting; 0 keeps all of it) now and every ``every`` seconds, until
    cancelled."""
    keep = services.settings.max_history
    if retention_hours <= 0 and keep <= 0:
        return
    while True:
        if retention_hours > 0:
            try:
                removed = await asyncio.to_thread(sweep_uploads, services, retention_hours)
            except Exception:  # a full disk or a locked database: the next sweep tries again
                log.exception("sweeping the uploads folder failed")
            else:
                if removed:
                    log.info("removed %d uploads older than %g hours", removed, retention_hours)
        if keep > 0:
            try:
                pruned = await services.jobs.prune_history(keep)
            except Exception:  # as above: the next sweep tries again
                log.exception("trimming the job history failed")
            else:
                if pruned:
                    log.info("removed %d finished jobs beyond max_history %d", pruned, keep)
        await asyncio.sleep(every)
