"""The docs' tables equal the code's: the family table and the sampler registry."""

from __future__ import annotations

from pathlib import Path

from impasto.engine.families import FAMILIES
from impasto.engine.schedulers import SAMPLER_SPECS, SCHEDULE_SPECS, SCHEDULES

DOCS = Path(__file__).resolve().parents[2] / "docs"


def table_rows(doc: str, header: str) -> list[list[str]]:
    """The cells of the markdown table under the line ``header`` (backticks dropped)."""
    lines = (DOCS / doc).read_text().splitlines()
    start = lines.index(header) + 2
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip().replace("`", "") for cell in line.strip("|").split("|")])
    return rows


def test_the_families_table_is_the_code_table() -> None:
    header = "| Family | What | Detected by | Steps | CFG | Size | Sampler | Schedule |"
    documented = table_rows("families.md", header)
    expected = [
        [
            f.id,
            f.label,
            f.detected_by.replace("`", ""),
            str(f.defaults.steps),
            f"{f.defaults.cfg_scale:g}",
            f"{f.defaults.width}x{f.defaults.height}",
            f.defaults.sampler,
            f.defaults.schedule,
        ]
        for f in FAMILIES.values()
    ]
    assert documented == expected


def test_the_sampler_table_is_the_registry() -> None:
    header = (
        "| Impasto sampler | label | A1111 name | aliases accepted | schedules "
        "| recommended steps | recommended schedule | A1111 Automatic | compared with |"
    )
    documented = table_rows("samplers.md", header)
    expected = [
        [
            s.id,
            s.label,
            s.a1111_name,
            ", ".join(s.aliases) or "-",
            "all" if s.schedules == SCHEDULES else ", ".join(s.schedules),
            str(s.recommended_steps),
            s.recommended_schedule,
            s.a1111_schedule,
            s.reference,
        ]
        for s in SAMPLER_SPECS.values()
    ]
    assert documented == expected


def test_the_schedule_table_is_the_registry() -> None:
    header = "| Impasto schedule | label | A1111 name | formula from, compared with |"
    documented = table_rows("samplers.md", header)
    expected = [[s.id, s.label, s.a1111_name, s.reference] for s in SCHEDULE_SPECS.values()]
    assert documented == expected
    assert tuple(SCHEDULE_SPECS) == SCHEDULES
