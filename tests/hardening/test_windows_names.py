"""A requested name that is one entry of a folder on Linux may be another place on Windows:
``D:evil`` is a path on drive D, ``x:y`` a hidden stream of ``x``, ``CON`` the console and
``x.`` the file ``x``. The daemon runs on Windows too, so such names are refused
everywhere: requested names, model ids, URL file names, hub listings and archive members."""

from __future__ import annotations

from pathlib import Path, PureWindowsPath
from types import SimpleNamespace

import pytest

from impasto.fsnames import inside_path, plain_name
from impasto.services.archives import safe_member
from impasto.services.downloads import RemoteFile
from impasto.services.safety import UnsafeContentError, check_id
from impasto.services.sources import url_filename
from impasto.services.stage_fetch import _fetch_all
from impasto.services.stage_job import InstallError
from impasto.worker.files import NotInstalledError, Roots, adapter_path, model_folder

FOLDER = PureWindowsPath("C:/Users/me/impasto/models")


@pytest.mark.parametrize("name", ["D:evil", "e:..", "Z:x.safetensors"])
def test_a_drive_letter_leaves_the_folder_on_windows(name: str) -> None:
    assert (FOLDER / name).parent != FOLDER  # Windows' own reading of the join
    assert not plain_name(name)


@pytest.mark.parametrize(
    "name",
    [
        "model:stream",
        "CON",
        "nul.safetensors",
        "Com1",
        "lpt9.txt",
        "x.",
        "x ",
        "a?b",
        "a*b",
        'a"b',
        "a<b",
        "a>b",
        "a|b",
        "a\tb",
        "a\x7fb",
    ],
)
def test_streams_devices_and_names_windows_changes_or_refuses_are_not_plain(name: str) -> None:
    assert not plain_name(name)


@pytest.mark.parametrize("name", ["sd-tiny", "my lora", "lora.v2.safetensors", "console", "é"])
def test_ordinary_names_stay_plain(name: str) -> None:
    assert plain_name(name)


def test_lookups_by_such_names_find_nothing(tmp_path: Path) -> None:
    (tmp_path / "loras").mkdir()
    assert model_folder(Roots(models_dir=tmp_path), "D:x") is None
    with pytest.raises(NotInstalledError, match="not a plain name"):
        adapter_path(tmp_path, "loras", "C:x")


@pytest.mark.parametrize("model_id", ["con", "NUL", "com1.onnx", "model.", "sd-tiny\n"])
def test_model_ids_are_plain_names_too(model_id: str) -> None:
    with pytest.raises(ValueError, match="not a valid model id"):
        check_id(model_id)
    assert check_id("sd-tiny.v2") == "sd-tiny.v2"


@pytest.mark.parametrize(
    ("url_path", "name"),
    [
        ("/D:evil.safetensors", "D_evil.safetensors"),
        ("/x/model.safetensors%3Astream", "model.safetensors_stream"),
        ("/x/CON", "_CON"),
        ("/x/nul.safetensors", "_nul.safetensors"),
        ("/x/model.safetensors.", "model.safetensors"),
        ("/x/" + "a" * 300 + ".safetensors", "a" * 233 + ".safetensors"),
    ],
)
def test_a_url_names_one_portable_file(url_path: str, name: str) -> None:
    assert url_filename(url_path) == name
    assert plain_name(name)


@pytest.mark.parametrize("member", ["model/CON", "model/unet/x.", "model/a:b", "model/lpt1.txt"])
def test_archive_members_windows_would_misread_are_refused(member: str) -> None:
    assert not inside_path(member)
    with pytest.raises(UnsafeContentError, match="outside the model folder"):
        safe_member(member)
    assert str(safe_member("model/.gitattributes")) == "model/.gitattributes"


def test_a_listed_file_windows_would_misread_is_never_fetched(tmp_path: Path) -> None:
    progress = SimpleNamespace(start=lambda *a: None, total=0, expected=0, file="")
    job = SimpleNamespace(progress=progress)
    remote = RemoteFile("http://127.0.0.1:9/x", "unet/aux.onnx")
    with pytest.raises(InstallError, match="outside the model folder"):
        _fetch_all(job, [remote], tmp_path)  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []
