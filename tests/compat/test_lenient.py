"""A1111 bodies read as pydantic v1 reads them, and the pure listings' shapes."""

from __future__ import annotations

from typing import Any

import pytest

from impasto.api.compat.a1111_schemas import Img2ImgRequest, Txt2ImgRequest
from impasto.api.compat.errors import CompatError
from impasto.api.compat.lenient import lenient_convert
from impasto.services import compat_assets


@pytest.mark.parametrize(
    ("field", "sent", "read"),
    [
        ("inpainting_mask_invert", False, 0),  # bool in an int field
        ("inpainting_mask_invert", True, 1),
        ("steps", 20.9, 20),  # pydantic v1 truncates
        ("steps", "20", 20),
        ("cfg_scale", "7.5", 7.5),
        ("cfg_scale", True, 1.0),
        ("restore_faces", "no", False),
        ("restore_faces", "On", True),
        ("restore_faces", 1, True),
        ("tiling", "false", False),
        ("prompt", 42, "42"),  # a number in a text field is its text
        ("sampler_name", 1.5, "1.5"),
        ("styles", ["a", 3], ["a", "3"]),  # list items too
        ("seed", None, None),
    ],
)
def test_pydantic_v1_coercions(field: str, sent: Any, read: Any) -> None:
    request = lenient_convert({field: sent, "not_a_field": {"x": 1}}, Img2ImgRequest)
    assert getattr(request, field) == read


@pytest.mark.parametrize(
    ("body", "field", "msg", "kind"),
    [
        # A value of the wrong type: pydantic v1's words and error type, as A1111 answers.
        ({"steps": "twenty"}, "steps", "value is not a valid integer", "type_error.integer"),
        ({"cfg_scale": "x"}, "cfg_scale", "value is not a valid float", "type_error.float"),
        (
            {"restore_faces": "maybe"},
            "restore_faces",
            "value could not be parsed to a boolean",
            "type_error.bool",
        ),
        ({"restore_faces": 2}, "restore_faces", "value could not be parsed to a boolean", None),
        ({"prompt": ["a"]}, "prompt", "str type expected", "type_error.str"),
        ({"styles": "cinematic"}, "styles", "value is not a valid list", "type_error.list"),
        ({"override_settings": [1]}, "override_settings", "value is not a valid dict", None),
        # Limits still apply after coercion (A1111 has none): the schema's rule in words.
        ({"cfg_scale": 99}, "cfg_scale", "must be a number between 0 and 30", "value_error"),
    ],
)
def test_what_still_does_not_fit_names_the_field(
    body: dict[str, Any], field: str, msg: str, kind: str | None
) -> None:
    with pytest.raises(CompatError) as error:
        lenient_convert(body, Txt2ImgRequest)
    assert (error.value.status, error.value.field, error.value.message) == (422, field, msg)
    if kind is not None:
        assert error.value.code == kind


def test_memory_report_has_a1111s_cuda_keys_with_a_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    gpu = {"index": 0, "name": "GPU", "memory_total": 100, "memory_used": 30}
    monkeypatch.setattr(compat_assets, "gpus", lambda: [gpu])
    cuda = compat_assets.memory_report()["cuda"]
    assert cuda["system"] == {"free": 70, "used": 30, "total": 100}
    assert {"active", "allocated", "reserved", "inactive", "events"} <= set(cuda)
    monkeypatch.setattr(compat_assets, "gpus", lambda: [])
    assert compat_assets.memory_report()["cuda"] == {"error": "unavailable"}
