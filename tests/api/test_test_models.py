"""The bundled random-weight test models stay out of the lists users see, unless asked for."""

from __future__ import annotations

import shutil
from pathlib import Path

from litestar.testing import TestClient

from impasto.api.app import create_app
from impasto.resources import bundled_models_dir
from impasto.services.safety import TEST_MODEL_MARKER
from impasto.settings import Settings
from tests.api.conftest import make_services


def listed(tmp_path: Path, **settings: object) -> dict[str, list[str]]:
    services = make_services(tmp_path, **settings)
    try:
        with TestClient(app=create_app(services)) as api:
            native = [m["id"] for m in api.get("/api/v1/models").json()]
            a1111 = [m["model_name"] for m in api.get("/sdapi/v1/sd-models").json()]
            openai = [m["id"] for m in api.get("/v1/models").json()["data"]]
            # Hidden is not gone: a request naming a test model still runs on it.
            job = api.post(
                "/api/v1/generate",
                json={"prompt": "x", "model": "sd-tiny-v", "width": 64, "height": 64},
            )
            assert job.status_code == 202, job.text
    finally:
        services.extra["db"].close()
    return {"native": native, "a1111": a1111, "openai": openai}


def test_users_see_the_default_model_and_their_own_not_the_test_models(tmp_path: Path) -> None:
    assert Settings().show_test_models is False  # what a fresh install gets
    own = tmp_path / "data" / "models" / "my-model"
    shutil.copytree(
        bundled_models_dir() / "sd-tiny", own, ignore=shutil.ignore_patterns(TEST_MODEL_MARKER)
    )
    # A copy of a test model in the models folder, marker and all (what `impasto pull` of
    # models/tiny/sd-tiny installs), is the user's: listed.
    shutil.copytree(bundled_models_dir() / "sd-tiny", tmp_path / "data" / "models" / "copied")
    # What a fresh install lists: the trained default model and the user's own.
    lists = listed(tmp_path, show_test_models=False, default_model="impasto-shapes")
    for entry_point, ids in lists.items():
        assert sorted(ids) == ["copied", "impasto-shapes", "my-model"], entry_point
    # A test model chosen as the default model still shows.
    lists = listed(tmp_path / "b", show_test_models=False)
    for entry_point, ids in lists.items():
        assert "sd-tiny" in ids and "sd-tiny-v" not in ids, entry_point


def test_show_test_models_lists_them_all(tmp_path: Path) -> None:
    tests = sorted(p.parent.name for p in bundled_models_dir().glob(f"*/{TEST_MODEL_MARKER}"))
    assert "sdxl-tiny-refiner" in tests and len(tests) >= 9
    lists = listed(tmp_path, show_test_models=True)
    assert set(tests) <= set(lists["native"])
