"""Install sources: the hub form the model list shows (hf://owner/name@revision/subfolder)
installs again when pasted back."""

from __future__ import annotations

import pytest

from impasto.services.errors import FieldError
from impasto.services.sources import describe_source, parse_source


def _parse(text: str, revision: str | None = None, subfolder: str | None = None) -> dict:
    source, _ = parse_source(text, revision=revision, subfolder=subfolder, known={})
    return source


@pytest.mark.parametrize(
    ("text", "repo", "revision", "subfolder"),
    [
        ("hf://owner/name", "owner/name", None, ""),
        ("hf:owner/name", "owner/name", None, ""),
        ("hf://owner/name@v1.0", "owner/name", "v1.0", ""),
        ("hf://owner/name@main/onnx/unet", "owner/name", "main", "onnx/unet"),
        ("hf://owner/name/onnx", "owner/name", None, "onnx"),
    ],
)
def test_hub_sources_are_read_with_their_revision_and_subfolder(
    text: str, repo: str, revision: str | None, subfolder: str
) -> None:
    source = _parse(text)
    assert (source["kind"], source["repo"]) == ("hub", repo)
    assert (source["revision"], source["subfolder"]) == (revision, subfolder)


def test_what_the_model_list_shows_installs_the_same_thing_again() -> None:
    shown = describe_source(
        {"kind": "hub", "repo": "o/n", "revision": "abc123", "subfolder": "onnx"}
    )
    assert shown == "hf://o/n@abc123/onnx"
    assert describe_source(_parse(shown)) == shown


def test_the_request_fields_win_over_the_text() -> None:
    source = _parse("hf://o/n@main/onnx", revision="v2", subfolder="")
    assert (source["revision"], source["subfolder"]) == ("v2", "")


@pytest.mark.parametrize("text", ["hf://", "hf://owner", "hf://o/n@", "hf://o/n/../../etc"])
def test_a_malformed_hub_source_is_named(text: str) -> None:
    with pytest.raises(FieldError) as raised:
        _parse(text)
    assert raised.value.field == "source"
    assert "outside the folders" not in raised.value.message  # never read as a local path
