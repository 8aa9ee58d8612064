"""Store records to wire schemas."""

from __future__ import annotations

from typing import Any

import msgspec

from impasto.services.runner import job_plan, public_result
from impasto.wire import GenerationStatus, ImageResult, ResolvedPlan, utc


def job_status(job: Any, position: int | None = None) -> GenerationStatus:
    try:
        plan: ResolvedPlan | None = job_plan(job)
    except msgspec.ValidationError:  # a record written by hand, without the plan's fields
        plan = None
    total = job.total_steps or (plan.steps if plan else 0)
    if job.status == "completed":
        progress = 1.0
    else:
        progress = round(job.current_step / total, 4) if total else 0.0
    return GenerationStatus(
        id=job.id,
        status=job.status,
        progress=progress,
        current_step=job.current_step,
        total_steps=total,
        position=position if job.status == "queued" else None,
        priority=job.priority,
        attempts=job.attempts,
        request=_filled(job.request, plan),
        plan=plan,
        results=[ImageResult(**public_result(job.id, r)) for r in job.results],
        error=job.error,
        warnings=job.warnings,
        created_at=utc(job.created_at),
        started_at=utc(job.started_at),
        completed_at=utc(job.completed_at),
    )


def _filled(request: dict[str, Any], plan: ResolvedPlan | None) -> dict[str, Any]:
    """The request as sent, with what the plan chose for each field it left out (null)."""
    if plan is None:
        return request
    chosen = msgspec.structs.asdict(plan)
    return {k: chosen.get(k) if v is None and k in chosen else v for k, v in request.items()}
