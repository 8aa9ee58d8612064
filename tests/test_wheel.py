"""The wheel carries the web UI, the bundled tiny model, migrations, docs assets and the catalog."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel_names(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(out),
            str(REPO),
        ],
        check=True,
        timeout=300,
    )
    [wheel] = out.glob("impasto-*.whl")
    return set(zipfile.ZipFile(wheel).namelist())


@pytest.mark.parametrize(
    "name",
    [
        "impasto/ui_static/index.html",
        "impasto/bundled_models/sd-tiny/unet/model.onnx",
        "impasto/bundled_models/sd-tiny/tokenizer/vocab.json",
        "impasto/bundled_models/impasto-shapes/unet/model.onnx",
        "impasto/bundled_models/impasto-shapes/impasto.json",
        "impasto/store/migrations/0001_init.sql",
        "impasto/api/docs_assets/swagger-ui-bundle.js",
        "impasto/model_catalog.toml",
        "impasto/engine/schedulers/euler_a.py",
        "impasto_tray/__init__.py",
        "impasto/py.typed",
    ],
)
def test_wheel_contains(wheel_names: set[str], name: str) -> None:
    assert name in wheel_names


def test_wheel_has_no_test_or_build_code(wheel_names: set[str]) -> None:
    assert not [n for n in wheel_names if n.startswith(("tests/", "models/", "bench/"))]
    assert not [n for n in wheel_names if n.endswith("build_tiny.py")]
