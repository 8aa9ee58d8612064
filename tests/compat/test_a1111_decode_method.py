"""A1111's ``sd_vae_decode_method`` maps to the native ``decoder`` (TAESD is "fast")."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from impasto.api.compat.a1111_schemas import Txt2ImgRequest
from impasto.api.compat.a1111_settings import decoder_setting
from impasto.services.compat import compat_state


def test_decode_method_from_the_request_or_the_set_options() -> None:
    services: Any = SimpleNamespace(extra={})
    assert decoder_setting(services, Txt2ImgRequest(prompt="x")) == "full"
    taesd = {"sd_vae_decode_method": "TAESD"}
    assert decoder_setting(services, Txt2ImgRequest(prompt="x", override_settings=taesd)) == "fast"
    compat_state(services).options["sd_vae_decode_method"] = "TAESD"  # POST /options
    assert decoder_setting(services, Txt2ImgRequest(prompt="x")) == "fast"
    full = {"sd_vae_decode_method": "Full"}
    assert decoder_setting(services, Txt2ImgRequest(prompt="x", override_settings=full)) == "full"
