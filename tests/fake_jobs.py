"""What the worker's write_outputs reads of a RunJob, for tests that call it directly."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Plan:
    model: str = "m"


@dataclass
class Job:
    job_id: str
    output_dir: str
    plan: Plan = field(default_factory=Plan)
    plugins: dict[str, Any] = field(default_factory=dict)
    plugin_options: dict[str, Any] = field(default_factory=dict)
