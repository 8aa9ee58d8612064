"""A1111's SD upscale script arguments become the native ``sd_upscale`` field."""

from __future__ import annotations

from pathlib import Path

import pytest

from impasto.services.errors import FieldError
from impasto.services.sd_upscale import sd_upscale_request
from impasto.wire import GenerateRequest
from tests.sr_model import write_sr_model

BASE = GenerateRequest(prompt="a castle", init_image="upload:" + "0" * 32, width=64, height=64)


def test_args_in_a1111_order(tmp_path: Path) -> None:
    write_sr_model(tmp_path / "upscalers" / "tiny-sr.onnx")
    # A1111's list: None, Lanczos, Nearest, then the installed models.
    found = sd_upscale_request(BASE, ["", 32, 3, 2], tmp_path).sd_upscale
    assert found is not None
    assert (found.overlap, found.upscaler, found.scale) == (32, "tiny-sr", 2.0)
    lanczos = sd_upscale_request(BASE, [None, "48", "1", "4"], tmp_path).sd_upscale
    assert lanczos is not None and (lanczos.overlap, lanczos.upscaler) == (48, "lanczos")
    by_name = sd_upscale_request(BASE, ["", 64, "Nearest", 2], tmp_path).sd_upscale
    assert by_name is not None and by_name.upscaler == "nearest"
    defaults = sd_upscale_request(BASE, [], tmp_path).sd_upscale
    assert defaults is not None and (defaults.overlap, defaults.upscaler) == (64, "none")


@pytest.mark.parametrize(
    ("args", "words"),
    [(["", 64, 9, 2], "upscaler_index 9"), (["", 64, 1, 9], "scale"), (["", "x", 1, 2], "overlap")],
)
def test_bad_args_name_script_args(tmp_path: Path, args: list[object], words: str) -> None:
    with pytest.raises(FieldError) as err:
        sd_upscale_request(BASE, args, tmp_path)
    assert err.value.field == "script_args" and words in err.value.message
