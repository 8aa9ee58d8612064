"""POST /models/{id}/load's keep_alive as the model manager hands it to the workers: a value
given is used as given (0 included), only a missing one takes the keep_alive setting."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any, cast

import pytest

from impasto.services.errors import FieldError
from impasto.services.manager import ModelManager
from impasto.services.models import ModelCatalog
from impasto.worker.protocol import LoadModel

TINY = Path(__file__).resolve().parents[2] / "models" / "tiny"


class FakeWorker:
    """One live worker: records what it is sent and answers a load at once."""

    def __init__(self, sent: list[Any]) -> None:
        self.sent = sent
        self.answers: dict[str, asyncio.Future[str]] = {}

    def expect_load(self, model_dir: str) -> asyncio.Future[str]:
        self.answers[model_dir] = asyncio.get_running_loop().create_future()
        return self.answers[model_dir]

    async def send(self, message: Any) -> None:
        self.sent.append(message)
        self.answers.pop(message.model_dir).set_result("")


class FakeSupervisor:
    """The seam the manager talks to the workers through: records what they were sent."""

    def __init__(self) -> None:
        self.sent: list[Any] = []

    def live_workers(self) -> list[FakeWorker]:
        return [FakeWorker(self.sent)]


def _manager(tmp_path: Path, setting: float) -> tuple[ModelManager, FakeSupervisor]:
    shutil.copytree(TINY / "sd-tiny", tmp_path / "models" / "mine")
    catalog = ModelCatalog(tmp_path / "models", bundled_dir=tmp_path / "none", store=None)
    supervisor = FakeSupervisor()
    none = cast(Any, None)
    manager = ModelManager(catalog, none, none, none, none, cast(Any, supervisor), setting)
    return manager, supervisor


@pytest.mark.parametrize(("asked", "kept"), [(None, 300.0), (0.0, 0.0), (2.5, 2.5)])
def test_load_keeps_the_model_for_the_asked_seconds(
    tmp_path: Path, asked: float | None, kept: float
) -> None:
    manager, supervisor = _manager(tmp_path, setting=300.0)
    assert asyncio.run(manager.load("mine", asked)).workers == 1
    (message,) = supervisor.sent
    assert isinstance(message, LoadModel)
    assert message.keep_alive == kept
    assert message.model_dir == str(tmp_path / "models" / "mine")


@pytest.mark.parametrize("asked", [-1.0, 604801.0, float("nan"), float("inf")])
def test_load_refuses_a_keep_alive_out_of_range(tmp_path: Path, asked: float) -> None:
    manager, supervisor = _manager(tmp_path, setting=300.0)
    with pytest.raises(FieldError) as refused:
        asyncio.run(manager.load("mine", asked))
    assert refused.value.field == "keep_alive"
    assert "0 and 604800" in str(refused.value)
    assert supervisor.sent == []
