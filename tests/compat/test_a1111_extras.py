"""A1111's upscalers listing and extras routes, driven by the real ``webuiapi`` client."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator

import pytest
import webuiapi
from PIL import Image, PngImagePlugin

from tests.harness import Daemon, running_daemon
from tests.sr_model import max_diff, pattern, reference_sr, write_sr_model

LANCZOS = Image.Resampling.LANCZOS


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    root = tmp_path_factory.mktemp("extras")
    write_sr_model(root / "data" / "models" / "upscalers" / "tiny-sr.onnx", scale=2)
    with running_daemon(root, preview_every=0) as running:
        yield running


@pytest.fixture
def api(daemon: Daemon) -> webuiapi.WebUIApi:
    return webuiapi.WebUIApi(baseurl=f"{daemon.url}/sdapi/v1")


def with_parameters(image: Image.Image, text: str) -> Image.Image:
    """``image`` as a PNG carrying A1111's parameters chunk, as a generated image does."""
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", text)
    buf = io.BytesIO()
    image.save(buf, format="PNG", pnginfo=info)
    return Image.open(io.BytesIO(buf.getvalue()))


def test_upscalers_lists_builtins_and_the_installed_model(api: webuiapi.WebUIApi) -> None:
    items = api.get_upscalers()
    assert [item["name"] for item in items] == ["None", "Lanczos", "Nearest", "tiny-sr"]
    for item in items:
        assert set(item) == {"name", "model_name", "model_path", "model_url", "scale"}
        assert item["model_path"] is None and item["model_url"] is None
    assert items[3]["model_name"] == "tiny-sr" and items[3]["scale"] == 2.0
    assert items[1]["model_name"] is None and isinstance(items[1]["scale"], float)


def test_scale_by_with_lanczos_keeps_the_png_info(api: webuiapi.WebUIApi) -> None:
    source = with_parameters(pattern(40, 24), "a lighthouse\nSteps: 4, Seed: 5")
    result = api.extra_single_image(source, upscaler_1="Lanczos", upscaling_resize=2)
    image = result.image
    assert image.size == (80, 48)
    assert image.tobytes() == source.convert("RGB").resize((80, 48), LANCZOS).tobytes()
    assert image.info["parameters"] == "a lighthouse\nSteps: 4, Seed: 5"
    assert image.info["postprocessing"] == (
        "Postprocess upscale by: 2, Postprocess upscaler: Lanczos"
    )
    assert result.info == "<p>Postprocess upscale by: 2, Postprocess upscaler: Lanczos</p>"


def test_the_installed_model_by_name(api: webuiapi.WebUIApi, daemon: Daemon) -> None:
    model = daemon.data_dir / "models" / "upscalers" / "tiny-sr.onnx"
    source = pattern(32, 24)
    image = api.extra_single_image(source, upscaler_1="tiny-sr", upscaling_resize=2).image
    assert max_diff(image, reference_sr(source, model)) <= 1
    # 4x from the 2x model: two passes, as A1111 loops an upscaler up to the size.
    image = api.extra_single_image(source, upscaler_1="TINY-SR", upscaling_resize=4).image
    assert max_diff(image, reference_sr(reference_sr(source, model), model)) <= 2


def test_scale_to_with_crop_centres_on_the_size(api: webuiapi.WebUIApi) -> None:
    source = pattern(40, 20)
    image = api.extra_single_image(
        source,
        resize_mode=1,
        upscaling_resize_w=96,
        upscaling_resize_h=96,
        upscaling_crop=True,
        upscaler_1="Nearest",
    ).image
    assert image.size == (96, 96)
    # The larger ratio (96/20) scales to 192x96 (floored to 8); centred, the sides are cut off.
    inner = source.resize((int(40 * 4.8), int(20 * 4.8)), Image.Resampling.NEAREST)
    inner = inner.resize((192, 96), LANCZOS) if inner.size != (192, 96) else inner
    assert image.tobytes() == inner.crop((48, 0, 144, 96)).tobytes()


def test_second_upscaler_is_blended_in(api: webuiapi.WebUIApi) -> None:
    source = pattern(24, 24)
    image = api.extra_single_image(
        source, upscaler_1="Lanczos", upscaler_2="Nearest", extras_upscaler_2_visibility=0.4
    ).image
    expected = Image.blend(
        source.resize((48, 48), LANCZOS), source.resize((48, 48), Image.Resampling.NEAREST), 0.4
    )
    assert max_diff(image, expected) == 0
    assert "Postprocess upscaler 2: Nearest" in image.info["postprocessing"]


def test_none_returns_the_image_unchanged(api: webuiapi.WebUIApi) -> None:
    source = pattern(24, 16)
    image = api.extra_single_image(source).image
    assert image.size == (24, 16) and max_diff(image, source) == 0


def test_batch_upscales_each_image(api: webuiapi.WebUIApi) -> None:
    sources = [pattern(16, 16, seed=1), pattern(24, 8, seed=2)]
    result = api.extra_batch_images(sources, upscaler_1="Nearest", upscaling_resize=2)
    assert [image.size for image in result.images] == [(32, 32), (48, 16)]
    for image, source in zip(result.images, sources, strict=True):
        assert image.tobytes() == source.resize(image.size, Image.Resampling.NEAREST).tobytes()


def _raw(daemon: Daemon, route: str, body: dict[str, object]) -> tuple[int, dict[str, object]]:
    with daemon.client() as client:
        response = client.post(f"/sdapi/v1/{route}", json=body)
    return response.status_code, response.json()


def _b64(image: Image.Image) -> str:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def test_unknown_upscaler_names_the_field(daemon: Daemon) -> None:
    status, body = _raw(
        daemon, "extra-single-image", {"image": _b64(pattern(8, 8)), "upscaler_1": "ESRGAN_4x"}
    )
    assert status == 422
    (item,) = body["detail"]  # type: ignore[misc]
    assert item["loc"] == ["body", "upscaler_1"]
    assert "ESRGAN_4x" in item["msg"] and "tiny-sr" in item["msg"]


def test_face_restoration_is_refused_naming_the_field(daemon: Daemon) -> None:
    for field in ("gfpgan_visibility", "codeformer_visibility"):
        status, body = _raw(
            daemon,
            "extra-single-image",
            {"image": _b64(pattern(8, 8)), "upscaler_1": "Lanczos", field: 0.5},
        )
        assert status == 422, body
        (item,) = body["detail"]  # type: ignore[misc]
        assert item["loc"] == ["body", field]
        assert "must be 0" in item["msg"] and "face restoration" in item["msg"]


def test_bad_resize_mode_and_missing_image(daemon: Daemon) -> None:
    status, body = _raw(
        daemon, "extra-single-image", {"image": _b64(pattern(8, 8)), "resize_mode": 3}
    )
    assert status == 422 and "resize_mode" in str(body)
    status, body = _raw(daemon, "extra-single-image", {"upscaler_1": "Lanczos"})
    assert status == 422 and body["detail"][0]["loc"] == ["body", "image"]  # type: ignore[index]


def test_a_factor_under_one_names_its_range(daemon: Daemon) -> None:
    body = {"image": _b64(pattern(64, 64)), "upscaler_1": "Lanczos", "upscaling_resize": 0.001}
    status, answer = _raw(daemon, "extra-single-image", body)
    assert status == 422, answer
    (item,) = answer["detail"]  # type: ignore[misc]
    assert item["loc"] == ["body", "upscaling_resize"]
    assert item["msg"] == "must be a number between 1 and 8"


def test_oversized_result_names_the_factor(daemon: Daemon) -> None:
    body = {"image": _b64(pattern(2000, 8)), "upscaler_1": "Lanczos", "upscaling_resize": 8}
    status, answer = _raw(daemon, "extra-single-image", body)
    assert status == 422
    (item,) = answer["detail"]  # type: ignore[misc]
    assert item["loc"] == ["body", "upscaling_resize"] and "8192" in item["msg"]


def test_extras_read_bodies_as_leniently_as_a1111(daemon: Daemon) -> None:
    # As pydantic v1 reads them: true for resize mode 1, numbers as strings, a float size,
    # 1/0 for booleans, a number for an upscaler name, unknown fields ignored.
    source = pattern(40, 24)
    status, body = _raw(
        daemon,
        "extra-single-image",
        {
            "image": _b64(source),
            "resize_mode": True,
            "upscaling_resize_w": "96",
            "upscaling_resize_h": 64.0,
            "upscaling_crop": 1,
            "show_extras_results": "yes",
            "upscale_first": 0,
            "upscaler_1": "Lanczos",
            "upscaler_2": "None",
            "extras_upscaler_2_visibility": "0",
            "gfpgan_visibility": False,
            "save_output": True,  # not one of A1111's fields: ignored, as pydantic does
        },
    )
    assert status == 200, body
    image = Image.open(io.BytesIO(base64.b64decode(str(body["image"]))))
    assert image.size == (96, 64)  # mode 1, cropped to exactly that size
    status, body = _raw(
        daemon,
        "extra-batch-images",
        {
            "imageList": [{"data": _b64(source), "name": 7}],
            "upscaling_resize": "2",
            "upscaler_1": "Nearest",
            "resize_mode": 0.0,
        },
    )
    assert status == 200, body
    (data,) = body["images"]  # type: ignore[misc]
    assert Image.open(io.BytesIO(base64.b64decode(data))).size == (80, 48)


@pytest.mark.parametrize(
    ("route", "body", "field"),
    [
        ("extra-single-image", {"upscaling_resize": "twice"}, "upscaling_resize"),
        ("extra-single-image", {"upscaling_crop": "maybe"}, "upscaling_crop"),
        ("extra-single-image", {"resize_mode": 2.5}, "resize_mode"),
        ("extra-batch-images", {"imageList": [{"name": "a"}]}, "imageList[0].data"),
        # Misspelt: required, as in A1111, not an empty answer.
        ("extra-batch-images", {"image_list": [{"data": "x"}]}, "imageList"),
    ],
)
def test_extras_values_that_still_do_not_fit_name_the_field(
    daemon: Daemon, route: str, body: dict[str, object], field: str
) -> None:
    status, answer = _raw(daemon, route, {"image": _b64(pattern(8, 8)), **body})
    assert status == 422, answer
    (item,) = answer["detail"]  # type: ignore[misc]
    assert item["loc"] == ["body", field], item
