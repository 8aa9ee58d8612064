"""A1111's selectable scripts (script_name / script_args) against a real daemon and the real
``webuiapi`` client: X/Y/Z plot, prompt matrix, prompts from file or textbox, loopback,
SD upscale."""

from __future__ import annotations

import base64
import io
import threading
import time
from typing import Any

import httpx
import pytest
import webuiapi
from PIL import Image, ImageChops

from impasto.formats.png import parse_a1111_parameters
from tests.harness import Daemon
from tests.sr_model import max_diff, pattern, write_sr_model

SIZE = {"width": 64, "height": 64}
# txt2img axis indexes, as A1111 counts them (img2img-only types left out).
NOTHING, SEED, STEPS, CFG, PROMPT_SR, SAMPLER, CHECKPOINT, SCHEDULE = 0, 1, 4, 6, 7, 9, 11, 17
NEGATIVE_GUIDANCE, CHURN, SIGMA_MAX, SIGMA_NOISE, ETA, VAE = 12, 13, 15, 16, 21, 27
SCHEDULE_MIN_SIGMA, SCHEDULE_RHO, EXTRA_NOISE, TOKEN_MERGING = 18, 20, 25, 31


def xyz_args(
    x: tuple[int, str, list[str]],
    y: tuple[int, str, list[str]] = (NOTHING, "", []),
    z: tuple[int, str, list[str]] = (NOTHING, "", []),
    *,
    legend: bool = False,
    lone: bool = True,
    sub_grids: bool = False,
) -> list[Any]:
    """script_args for "x/y/z plot" in A1111's order (16 values)."""
    return [*x, *y, *z, legend, lone, sub_grids, False, 0, False, False]


@pytest.fixture
def api(impasto_daemon: Daemon) -> webuiapi.WebUIApi:
    client = webuiapi.WebUIApi(baseurl=f"{impasto_daemon.url}/sdapi/v1", steps=2)
    client.set_options({"sd_model_checkpoint": "sd-tiny"})
    return client


@pytest.fixture
def http(impasto_daemon: Daemon) -> httpx.Client:
    client = impasto_daemon.client()
    client.timeout = httpx.Timeout(300)
    return client


def decode(data: str) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(data)))


def embedded(image: Image.Image) -> dict[str, Any]:
    return parse_a1111_parameters(image.info["parameters"])


def pixels(images: list[str]) -> list[bytes]:
    """The RGB pixels of base64 PNGs: what the pictures show, their text chunks left out (a
    cell's PNG names its axis value, so its bytes differ even where its picture does not)."""
    return [decode(image).convert("RGB").tobytes() for image in images]


def same_pixels(a: Image.Image, b: Image.Image) -> bool:
    return ImageChops.difference(a.convert("RGB"), b.convert("RGB")).getbbox() is None


def history(http: httpx.Client, count: int) -> list[dict[str, Any]]:
    """The newest ``count`` jobs, oldest first."""
    items = http.get("/api/v1/history/", params={"limit": count}).json()["items"]
    return list(reversed(items))


def test_scripts_and_script_info_list_what_runs_in_a1111_shapes(
    api: webuiapi.WebUIApi, http: httpx.Client
) -> None:
    scripts = api.get_scripts()
    assert scripts == {
        "txt2img": ["prompt matrix", "prompts from file or textbox", "x/y/z plot"],
        "img2img": [
            "loopback",
            "prompt matrix",
            "prompts from file or textbox",
            "sd upscale",
            "x/y/z plot",
        ],
    }
    info = http.get("/sdapi/v1/script-info").json()  # webuiapi has no getter for it
    built_in = ("seed", "sampler", "refiner")  # A1111's always-on scripts Impasto runs
    assert {(s["name"], s["is_img2img"]) for s in info} == {
        *((name, False) for name in [*scripts["txt2img"], *built_in]),
        *((name, True) for name in [*scripts["img2img"], *built_in]),
    }
    for script in info:
        assert set(script) == {"name", "is_alwayson", "is_img2img", "args"}
        assert script["is_alwayson"] is (script["name"] in built_in)
        for arg in script["args"]:
            assert set(arg) == {"label", "value", "minimum", "maximum", "step", "choices"}
    by_name = {(s["name"], s["is_img2img"]): s["args"] for s in info}
    xyz = by_name[("x/y/z plot", False)]
    assert len(xyz) == 16
    assert [a["label"] for a in xyz[9:]] == [
        "Draw legend",
        "Include Sub Images",
        "Include Sub Grids",
        "Keep -1 for seeds",
        "Grid margins (px)",
        "Use text inputs instead of dropdowns",
        "Use raw text lines",
    ]
    x_types = xyz[0]["choices"]
    assert (x_types[STEPS], x_types[SAMPLER], x_types[CHECKPOINT]) == (
        "Steps",
        "Sampler",
        "Checkpoint name",
    )
    # img2img counts its own types: no hires ones, so its Sampler and Checkpoint come earlier.
    img2img_types = by_name[("x/y/z plot", True)][0]["choices"]
    assert (img2img_types[6], img2img_types[9], img2img_types[10]) == (
        "Image CFG Scale",
        "Sampler",
        "Checkpoint name",
    )
    upscale = by_name[("sd upscale", True)]
    assert [a["label"] for a in upscale] == [None, "Tile overlap", "Upscaler", "Scale Factor"]
    assert (upscale[1]["value"], upscale[1]["maximum"], upscale[3]["value"]) == (64, 256, 2.0)
    upscalers = [u["name"] for u in http.get("/sdapi/v1/upscalers").json()]
    assert upscale[2]["choices"] == upscalers and upscale[2]["value"] == "None"
    loops = by_name[("loopback", True)][0]
    assert (loops["label"], loops["value"], loops["minimum"], loops["maximum"]) == (
        "Loops",
        4,
        1,
        32,
    )


def test_xyz_grid_is_the_axes_product_with_prompt_sr_in_each_infotext(
    api: webuiapi.WebUIApi,
) -> None:
    result = api.txt2img(
        prompt="a red house",
        negative_prompt="blurry",
        seed=321,
        script_name="X/Y/Z plot",
        script_args=xyz_args((STEPS, "1-3", []), (PROMPT_SR, "red, green", [])),
        **SIZE,
    )
    grid, *cells = result.images
    assert grid.size == (3 * 64, 2 * 64)
    assert len(cells) == 6
    # Cells run X fastest; each one sits at its place in the grid.
    for index, cell in enumerate(cells):
        col, row = index % 3, index // 3
        assert same_pixels(grid.crop((col * 64, row * 64, col * 64 + 64, row * 64 + 64)), cell)
        params = embedded(cell)
        assert params["steps"] == col + 1
        assert params["prompt"] == ("a red house", "a green house")[row]
        assert params["seed"] == 321
    info = result.info
    assert info["index_of_first_image"] == 1
    assert info["all_prompts"][1:] == ["a red house"] * 3 + ["a green house"] * 3
    assert "X Type: Steps" in info["infotexts"][0]
    assert "Y Type: Prompt S/R" in info["infotexts"][0]
    assert "Script: X/Y/Z plot" in grid.info["parameters"]
    assert info["extra_generation_params"]["Script"] == "X/Y/Z plot"
    assert len(info["infotexts"]) == len(result.images)


def test_xyz_dropdown_axes_switch_samplers_and_checkpoints(api: webuiapi.WebUIApi) -> None:
    result = api.txt2img(
        prompt="a boat",
        seed=8,
        script_name="x/y/z plot",
        script_args=xyz_args(
            (SAMPLER, "", ["Euler", "DPM++ 2M"]),
            (CHECKPOINT, "", ["sd-tiny", "sd-tiny-turbo"]),
        ),
        **SIZE,
    )
    grid, *cells = result.images
    assert grid.size == (128, 128) and len(cells) == 4
    seen = [(embedded(c)["sampler_name"], embedded(c)["model"]) for c in cells]
    assert seen == [
        ("Euler", "sd-tiny"),
        ("DPM++ 2M", "sd-tiny"),
        ("Euler", "sd-tiny-turbo"),
        ("DPM++ 2M", "sd-tiny-turbo"),
    ]


def test_xyz_schedule_axis_wins_and_automatic_is_each_samplers_own(
    api: webuiapi.WebUIApi,
) -> None:
    # Schedule type on X, Sampler on Y: A1111 reads the scheduler when it samples, so the
    # axis's Exponential holds whatever the Sampler axis sets, and "Automatic" is the
    # sampler's own choice (Uniform for Euler, Karras for DPM++ 2M).
    result = api.txt2img(
        prompt="a boat",
        seed=8,
        script_name="x/y/z plot",
        script_args=xyz_args(
            (SCHEDULE, "", ["Automatic", "Exponential"]), (SAMPLER, "", ["Euler", "DPM++ 2M"])
        ),
        **SIZE,
    )
    _, *cells = result.images
    seen = [(embedded(c)["sampler_name"], embedded(c)["schedule_type"]) for c in cells]
    assert seen == [
        ("Euler", "Uniform"),
        ("Euler", "Exponential"),
        ("DPM++ 2M", "Karras"),
        ("DPM++ 2M", "Exponential"),
    ]


def test_xyz_hires_sampler_axis_brings_its_own_automatic_schedule(http: httpx.Client) -> None:
    # No hr_scheduler: the hires pass takes the first pass's scheduler, here Automatic, which
    # is each hires sampler's own (Uniform for Euler, Karras for DPM++ 2M).
    response = http.post(
        "/sdapi/v1/txt2img",
        json={
            "prompt": "a tower",
            "steps": 1,
            **SIZE,
            "enable_hr": True,
            "hr_scale": 1.25,
            "script_name": "x/y/z plot",
            "script_args": xyz_args(("Hires sampler", "", ["Euler", "DPM++ 2M"])),  # type: ignore[arg-type]
        },
    )
    assert response.status_code == 200, response.text
    planned = [
        (job["plan"]["hires"]["sampler"], job["plan"]["hires"]["schedule"])
        for job in history(http, 2)
    ]
    assert planned == [("euler", "uniform"), ("dpmpp_2m", "karras")]


def test_xyz_eta_axis_sets_eta_where_the_sampler_adds_noise(http: httpx.Client) -> None:
    """Eta on X, Sampler on Y: Euler a and DDIM take it (the PNG says Eta / Eta DDIM where it
    differs from theirs), Euler adds no noise per step and runs without it, as in A1111."""
    response = http.post(
        "/sdapi/v1/txt2img",
        json={
            "prompt": "a kite",
            "seed": 3,
            "steps": 2,
            **SIZE,
            "script_name": "x/y/z plot",
            "script_args": xyz_args(
                (ETA, "0, 0.5", []), (SAMPLER, "", ["Euler a", "Euler", "DDIM"])
            ),
        },
    )
    assert response.status_code == 200, response.text
    jobs = history(http, 6)
    planned = [(job["plan"]["sampler"], job["plan"]["eta"]) for job in jobs]
    assert planned == [
        ("euler_a", 0.0),
        ("euler_a", 0.5),
        ("euler", None),
        ("euler", None),
        ("ddim", 0.0),
        ("ddim", 0.5),
    ]
    _, *cells = response.json()["images"]
    written = [embedded(_png(cell))["extra"] for cell in cells]
    assert [(w.get("Eta"), w.get("Eta DDIM")) for w in written] == [
        ("0", None),
        ("0.5", None),
        (None, None),
        (None, None),
        (None, None),
        (None, "0.5"),
    ]


def test_xyz_sigma_axes_set_churn_where_the_sampler_takes_it(http: httpx.Client) -> None:
    """Sigma Churn on X, Sampler on Y: Euler and DPM2 run with each churn (the PNG says Sigma
    churn where it is not 0), DPM++ 2M has none and runs without, as A1111 passes churn to
    Euler, Heun and DPM2 only; the churn a request's options set follows the Sampler axis."""
    body = {"prompt": "a kite", "seed": 3, "steps": 3, **SIZE, "script_name": "x/y/z plot"}
    args = xyz_args((CHURN, "0, 2", []), (SAMPLER, "", ["Euler", "DPM++ 2M", "DPM2"]))
    response = http.post("/sdapi/v1/txt2img", json={**body, "script_args": args})
    assert response.status_code == 200, response.text
    planned = [(job["plan"]["sampler"], job["plan"]["s_churn"]) for job in history(http, 6)]
    assert planned == [
        ("euler", 0.0),
        ("euler", 2.0),
        ("dpmpp_2m", 0.0),
        ("dpmpp_2m", 0.0),
        ("dpm_2", 0.0),
        ("dpm_2", 2.0),
    ]
    _, *cells = response.json()["images"]
    written = [embedded(_png(cell))["extra"].get("Sigma churn") for cell in cells]
    assert written == [None, "2", None, None, None, "2"]
    shown = pixels(cells)
    assert shown[0] != shown[1] and shown[4] != shown[5]  # churn changed the picture
    # The first sampler has no churn, so the request's own is held back; Euler picks it up.
    # Sigma max 0 is A1111's "no bound".
    args = xyz_args((SAMPLER, "", ["DPM++ 2M", "Euler"]), (SIGMA_MAX, "0, 5", []))
    overrides = {"override_settings": {"s_churn": 1.5, "s_noise": 1.01}, "sampler_name": "DPM++ 2M"}
    response = http.post("/sdapi/v1/txt2img", json={**body, **overrides, "script_args": args})
    assert response.status_code == 200, response.text
    churns = [
        (job["plan"]["s_churn"], job["plan"]["s_noise"], job["plan"]["s_tmax"])
        for job in history(http, 4)
    ]
    assert churns == [(0.0, 1.0, None), (1.5, 1.01, None), (0.0, 1.0, None), (1.5, 1.01, 5.0)]


def test_xyz_schedule_axes_set_the_bounds_where_the_schedule_takes_them(
    http: httpx.Client,
) -> None:
    """Schedule rho on X, Schedule type on Y: Karras and polyexponential run with each rho
    (the PNG says Schedule rho where it is set; 0 is the schedule's own), Uniform has none and
    runs without, as A1111 ignores it there; a request's schedule options follow the Schedule
    type axis."""
    body = {"prompt": "a kite", "seed": 3, "steps": 3, **SIZE, "script_name": "x/y/z plot"}
    body["sampler_name"] = "Euler"
    schedules = ["Karras", "Uniform", "Polyexponential"]
    args = xyz_args((SCHEDULE_RHO, "0, 3", []), (SCHEDULE, "", schedules))
    response = http.post("/sdapi/v1/txt2img", json={**body, "script_args": args})
    assert response.status_code == 200, response.text
    planned = [(job["plan"]["schedule"], job["plan"]["rho"]) for job in history(http, 6)]
    assert planned == [
        ("karras", None),
        ("karras", 3.0),
        ("uniform", None),
        ("uniform", None),
        ("polyexponential", None),
        ("polyexponential", 3.0),
    ]
    _, *cells = response.json()["images"]
    written = [embedded(_png(cell))["extra"].get("Schedule rho") for cell in cells]
    assert written == [None, "3", None, None, None, "3"]
    shown = pixels(cells)
    assert shown[0] != shown[1] and shown[4] != shown[5]  # rho changed the picture
    # The request's scheduler has no range, so its option is held back; Karras picks it up.
    args = xyz_args((SCHEDULE, "", ["Uniform", "Karras"]), (SCHEDULE_MIN_SIGMA, "0, 0.5", []))
    options = {"override_settings": {"sigma_max": 9}, "scheduler": "Uniform"}
    response = http.post("/sdapi/v1/txt2img", json={**body, **options, "script_args": args})
    assert response.status_code == 200, response.text
    bounds = [(job["plan"]["sigma_min"], job["plan"]["sigma_max"]) for job in history(http, 4)]
    assert bounds == [(None, None), (None, 9.0), (None, None), (0.5, 9.0)]


def test_xyz_negative_guidance_axis_skips_the_negative_pass_where_there_is_one(
    http: httpx.Client,
) -> None:
    """Negative Guidance minimum sigma on X, CFG Scale on Y: at CFG 5 the sigma is used (the
    PNG says NGMS, and the picture changes); at CFG 1 there is no negative pass to skip, so the
    cell runs without it, as it changes nothing there."""
    body = {"prompt": "a kite", "seed": 3, "steps": 3, **SIZE, "script_name": "x/y/z plot"}
    args = xyz_args((NEGATIVE_GUIDANCE, "0, 15", []), (CFG, "1, 5", []))
    response = http.post("/sdapi/v1/txt2img", json={**body, "script_args": args})
    assert response.status_code == 200, response.text
    planned = [(job["plan"]["cfg_scale"], job["plan"]["s_min_uncond"]) for job in history(http, 4)]
    assert planned == [(1.0, 0.0), (1.0, 0.0), (5.0, 0.0), (5.0, 15.0)]
    _, *cells = response.json()["images"]
    written = [embedded(_png(cell))["extra"].get("NGMS") for cell in cells]
    assert written == [None, None, None, "15"]
    shown = pixels(cells)
    assert shown[2] != shown[3]  # half the calls ran unguided


def test_xyz_discard_axis_sets_it_where_the_sampler_has_sigmas(http: httpx.Client) -> None:
    """Always discard next-to-last sigma on X (A1111's True/False choices), Sampler on Y: Euler
    runs it (another picture), DDIM walks timesteps and runs without it, as in A1111."""
    body = {"prompt": "a kite", "seed": 3, "steps": 3, **SIZE, "script_name": "x/y/z plot"}
    choices = http.get("/sdapi/v1/script-info").json()
    xyz = next(s for s in choices if s["name"] == "x/y/z plot" and not s["is_img2img"])
    labels = xyz["args"][0]["choices"]
    discard = labels.index("Always discard next-to-last sigma")
    args = xyz_args((discard, "", ["True", "False"]), (SAMPLER, "", ["Euler", "DDIM"]))
    args[1], args[2] = "", ["False", "True"]
    response = http.post("/sdapi/v1/txt2img", json={**body, "script_args": args})
    assert response.status_code == 200, response.text
    planned = [
        (job["plan"]["sampler"], job["plan"]["discard_penultimate_sigma"])
        for job in history(http, 4)
    ]
    assert planned == [("euler", False), ("euler", True), ("ddim", False), ("ddim", False)]
    _, *cells = response.json()["images"]
    shown = pixels(cells)
    assert shown[0] != shown[1] and shown[2] == shown[3]


def test_xyz_sgm_noise_multiplier_axis_sets_it_where_the_sampler_has_sigmas(
    http: httpx.Client,
) -> None:
    """SGM noise multiplier on X, Sampler on Y: Euler starts from the scaled noise (another
    picture, written as A1111 writes it), DDIM walks timesteps and runs without it."""
    body = {"prompt": "a kite", "seed": 3, "steps": 3, **SIZE, "script_name": "x/y/z plot"}
    choices = http.get("/sdapi/v1/script-info").json()
    xyz = next(s for s in choices if s["name"] == "x/y/z plot" and not s["is_img2img"])
    sgm = xyz["args"][0]["choices"].index("SGM noise multiplier")
    args = xyz_args((sgm, "", ["False", "True"]), (SAMPLER, "", ["Euler", "DDIM"]))
    response = http.post("/sdapi/v1/txt2img", json={**body, "script_args": args})
    assert response.status_code == 200, response.text
    planned = [
        (job["plan"]["sampler"], job["plan"]["sgm_noise_multiplier"]) for job in history(http, 4)
    ]
    assert planned == [("euler", False), ("euler", True), ("ddim", False), ("ddim", False)]
    _, *cells = response.json()["images"]
    written = [embedded(_png(cell))["extra"].get("SGM noise multiplier") for cell in cells]
    assert written == [None, "True", None, None]
    shown = pixels(cells)
    assert shown[0] != shown[1] and shown[2] == shown[3]
    refused = xyz_args((sgm, "", ["maybe"]), (SAMPLER, "", ["Euler"]))
    answer = http.post("/sdapi/v1/txt2img", json={**body, "script_args": refused})
    assert answer.status_code == 422 and "not True or False" in answer.text, answer.text


def test_xyz_unipc_order_axis_sets_it_where_the_sampler_is_unipc(http: httpx.Client) -> None:
    """UniPC Order on X, Sampler on Y: UniPC runs each order (another picture, written as
    A1111 labels it); Euler runs without it, as in A1111."""
    body = {"prompt": "a kite", "seed": 3, "steps": 4, **SIZE, "script_name": "x/y/z plot"}
    choices = http.get("/sdapi/v1/script-info").json()
    xyz = next(s for s in choices if s["name"] == "x/y/z plot" and not s["is_img2img"])
    order = xyz["args"][0]["choices"].index("UniPC Order")
    args = xyz_args((order, "1, 3", []), (SAMPLER, "", ["UniPC", "Euler"]))
    response = http.post("/sdapi/v1/txt2img", json={**body, "script_args": args})
    assert response.status_code == 200, response.text
    planned = [(job["plan"]["sampler"], job["plan"]["unipc_order"]) for job in history(http, 4)]
    # A1111 runs its slow-to-change UniPC Order axis outermost; the grid keeps X inner.
    assert planned == [("unipc", 1), ("euler", None), ("unipc", 3), ("euler", None)]
    _, *cells = response.json()["images"]
    written = [embedded(_png(cell))["extra"].get("UniPC order") for cell in cells]
    assert written == ["1", "3", None, None]
    shown = pixels(cells)
    assert shown[0] != shown[1] and shown[2] == shown[3]


def test_xyz_extra_noise_axis_reaches_the_hires_pass_and_not_a_plain_txt2img(
    http: httpx.Client,
) -> None:
    """Extra noise on X: with the hires fix each value runs (another picture); without it no
    pass starts from an image, so the cells run without it, as in A1111."""
    body = {"prompt": "a kite", "seed": 3, "steps": 3, **SIZE, "script_name": "x/y/z plot"}
    args = xyz_args((EXTRA_NOISE, "0, 0.5", []))
    hires = {"enable_hr": True, "hr_scale": 2, "denoising_strength": 0.5}
    response = http.post("/sdapi/v1/txt2img", json={**body, **hires, "script_args": args})
    assert response.status_code == 200, response.text
    assert [job["plan"]["extra_noise"] for job in history(http, 2)] == [0.0, 0.5]
    _, *cells = response.json()["images"]
    shown = pixels(cells)
    assert shown[0] != shown[1]
    response = http.post("/sdapi/v1/txt2img", json={**body, "script_args": args})
    assert response.status_code == 200, response.text
    assert [job["plan"]["extra_noise"] for job in history(http, 2)] == [0.0, 0.0]


def test_xyz_rng_source_axis_picks_the_noise_source(http: httpx.Client) -> None:
    """RNG source on X (A1111's GPU, CPU, NV): torch's CPU and CUDA generators for CPU and NV,
    Impasto's own noise for GPU; three noises, three pictures; an unknown source is refused."""
    body = {"prompt": "a kite", "seed": 3, "steps": 2, **SIZE, "script_name": "x/y/z plot"}
    scripts = http.get("/sdapi/v1/script-info").json()
    xyz = next(s for s in scripts if s["name"] == "x/y/z plot" and not s["is_img2img"])
    axis = xyz["args"][0]["choices"].index("RNG source")
    response = http.post(
        "/sdapi/v1/txt2img", json={**body, "script_args": xyz_args((axis, "GPU, CPU, NV", []))}
    )
    assert response.status_code == 200, response.text
    assert [job["plan"]["rng"] for job in history(http, 3)] == ["pcg64", "cpu", "nv"]
    _, *cells = response.json()["images"]
    assert len(set(pixels(cells))) == 3
    refused = http.post(
        "/sdapi/v1/txt2img", json={**body, "script_args": xyz_args((axis, "MPS", []))}
    )
    assert refused.status_code == 422 and "RNG source" in refused.text, refused.text


def test_xyz_noise_multiplier_axis_sets_img2imgs_and_leaves_txt2img_alone(
    http: httpx.Client,
) -> None:
    """A1111's "Initial noise multiplier" axis: each img2img cell runs with its value (the PNG
    says Noise multiplier where it is not 1); txt2img has none, so there it changes nothing."""
    axis = ("Initial noise multiplier", "0.5, 1", [])
    source = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 30, 30)).save(source, format="PNG")
    body = {"prompt": "a kite", "seed": 3, "steps": 2, **SIZE, "script_name": "x/y/z plot"}
    image = {"init_images": [base64.b64encode(source.getvalue()).decode()]}
    response = http.post(
        "/sdapi/v1/img2img",
        json={**body, **image, "script_args": xyz_args(axis)},  # type: ignore[arg-type]
    )
    assert response.status_code == 200, response.text
    assert [job["plan"]["noise_multiplier"] for job in history(http, 2)] == [0.5, 1.0]
    _, *cells = response.json()["images"]
    written = [embedded(_png(cell))["extra"].get("Noise multiplier") for cell in cells]
    assert written == ["0.5", None]
    response = http.post(
        "/sdapi/v1/txt2img",
        json={**body, "script_args": xyz_args(axis)},  # type: ignore[arg-type]
    )
    assert response.status_code == 200, response.text
    assert [job["plan"]["noise_multiplier"] for job in history(http, 2)] == [1.0, 1.0]
    too_much = xyz_args(("Initial noise multiplier", "2", []))  # type: ignore[arg-type]
    refused = http.post("/sdapi/v1/img2img", json={**body, **image, "script_args": too_much})
    assert refused.status_code == 422 and "between 0 and 1.5" in refused.text, refused.text


def _png(b64: str) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(b64)))


def test_xyz_size_axis_gives_each_cell_its_size(http: httpx.Client) -> None:
    response = http.post(
        "/sdapi/v1/txt2img",
        json={
            "prompt": "a kite",
            "script_name": "x/y/z plot",
            # The type by its label, which Impasto accepts besides A1111's index.
            "script_args": xyz_args(("Size", "64x64, 96x64", [])),  # type: ignore[arg-type]
        },
    )
    assert response.status_code == 200, response.text
    grid, small, wide = (decode(image) for image in response.json()["images"])
    assert (small.size, wide.size) == ((64, 64), (96, 64))
    assert grid.size == (2 * 96, 64)
    assert same_pixels(grid.crop((96, 0, 192, 64)), wide)


def test_xyz_legend_z_axis_and_sub_grids(api: webuiapi.WebUIApi) -> None:
    result = api.txt2img(
        prompt="a hill",
        script_name="x/y/z plot",
        script_args=xyz_args(
            (CFG, "3,7", []),
            (NOTHING, "", []),
            (SEED, "5,6", []),
            legend=True,
            lone=False,
            sub_grids=True,
        ),
        **SIZE,
    )
    main, first, second = result.images
    # The legend adds room for the labels around the 2x1 cells.
    assert first.width > 2 * 64 or first.height > 64
    assert first.size == second.size
    assert main.width >= 2 * first.width and main.height > first.height
    main_info = result.info["infotexts"][0]
    assert 'Z Type: Seed, Z Values: "5,6", Fixed Z Values: "5, 6"' in main_info
    assert [embedded(image)["seed"] for image in (first, second)] == [5, 6]
    # The labels are drawn: the band above the cells is not plain white.
    band = first.crop((first.width - 128, 0, first.width, first.height - 64))
    assert len(band.getcolors(1 << 16) or []) > 1


def test_xyz_mistakes_answer_422_naming_script_args_and_queue_nothing(
    http: httpx.Client,
) -> None:
    before = len(http.get("/api/v1/history/", params={"limit": 200}).json()["items"])
    cases = [
        (xyz_args((SAMPLER, "", ["Euler", "No Such Sampler"])), "No Such Sampler"),
        (xyz_args((TOKEN_MERGING, "0.1,0.2", [])), "not supported"),
        (xyz_args((CHURN, "0.1,200", [])), "Sigma Churn 200"),
        (xyz_args((ETA, "0.5,1.5", [])), "Eta 1.5"),
        (xyz_args((STEPS, "1, 900", [])), "steps"),
        (xyz_args((PROMPT_SR, "zebra, horse", [])), "zebra"),
        (xyz_args((CHECKPOINT, "", ["nope-model"])), "nope-model"),
        # Installed, but cannot draw alone: was a 422 naming the native "model".
        (xyz_args((CHECKPOINT, "", ["sd-tiny", "sdxl-tiny-refiner"])), "SDXL refiner"),
        (xyz_args((STEPS, "", [])), "empty"),
        # Found only when the plan resolves (no such VAE installed): still nothing queued.
        (xyz_args((VAE, "", ["Automatic", "nope-vae"])), "nope-vae"),
        ([99], "index"),
        # 100 cells of 2048x1024: past A1111's 200 megapixel grid limit.
        (xyz_args((SEED, "1-100", [])), "megapixels", {"width": 2048, "height": 1024}),
    ]
    for args, needle, *size in cases:
        body = {"prompt": "a cat", "script_name": "x/y/z plot", "script_args": args}
        response = http.post("/sdapi/v1/txt2img", json={**body, **(size[0] if size else SIZE)})
        assert response.status_code == 422, (args, response.text)
        detail = response.json()["detail"][0]
        assert detail["loc"] == ["body", "script_args"]
        assert needle.lower() in detail["msg"].lower(), (needle, detail)
    after = len(http.get("/api/v1/history/", params={"limit": 200}).json()["items"])
    assert after == before


def test_unknown_script_is_a1111s_422(http: httpx.Client) -> None:
    response = http.post("/sdapi/v1/txt2img", json={"prompt": "x", "script_name": "Outpainting"})
    assert response.status_code == 422
    assert response.json()["detail"] == "Script 'Outpainting' not found"
    # Loopback is an img2img script only, as in A1111.
    response = http.post("/sdapi/v1/txt2img", json={"prompt": "x", "script_name": "loopback"})
    assert response.status_code == 422


def test_prompt_matrix_runs_every_combination_with_a_labelled_grid(
    api: webuiapi.WebUIApi,
) -> None:
    result = api.txt2img(
        prompt="a cat|in the rain|at night",
        seed=44,
        script_name="prompt matrix",
        script_args=[False, False, "positive", "comma", 0],
        **SIZE,
    )
    grid, *cells = result.images
    prompts = [embedded(cell)["prompt"] for cell in cells]
    assert prompts == [
        "a cat",
        "a cat, in the rain",
        "a cat, at night",
        "a cat, in the rain, at night",
    ]
    assert {embedded(cell)["seed"] for cell in cells} == {44}
    assert grid.width > 128 and grid.height > 128  # 2x2 cells plus the labels
    assert result.info["index_of_first_image"] == 1
    # Random seeds: one seed per combination, counting up.
    varied = api.txt2img(
        prompt="a dog|wet",
        seed=10,
        script_name="prompt matrix",
        script_args=[True, True, "positive", "space", 0],
        **SIZE,
    )
    assert [embedded(c)["prompt"] for c in varied.images[1:]] == ["a dog", "wet a dog"]
    assert [embedded(c)["seed"] for c in varied.images[1:]] == [10, 11]


def test_prompts_from_textbox_run_one_generation_per_line(api: webuiapi.WebUIApi) -> None:
    lines = 'a fox\n\n--prompt "a grey wolf" --steps 3 --seed 11 --negative_prompt "blur"'
    lines += " --tiling true --restore_faces true\n"
    result = api.txt2img(
        prompt="ignored",
        seed=100,
        script_name="prompts from file or textbox",
        script_args=[True, False, lines],
        **SIZE,
    )
    fox, wolf = (embedded(image) for image in result.images)
    assert (fox["prompt"], fox["seed"], fox["steps"]) == ("a fox", 100, 2)
    assert (wolf["prompt"], wolf["seed"], wolf["steps"]) == ("a grey wolf", 11, 3)
    assert wolf["negative_prompt"] == "blur"
    # --tiling runs (A1111 writes "Tiling: True"); --restore_faces is accepted and ignored.
    assert wolf["extra"].get("Tiling") == "True" and "Tiling" not in fox["extra"]
    assert result.info["all_prompts"] == ["a fox", "a grey wolf"]


def test_prompts_from_textbox_refuses_an_unknown_option(http: httpx.Client) -> None:
    response = http.post(
        "/sdapi/v1/txt2img",
        json={
            "prompt": "x",
            "script_name": "prompts from file or textbox",
            "script_args": [False, False, "a cat\n--prompt dog --stepz 3"],
        },
    )
    assert response.status_code == 422
    assert "line 2" in response.json()["detail"][0]["msg"]
    assert "--stepz" in response.json()["detail"][0]["msg"]


def test_loopback_feeds_each_output_back_as_the_next_init_image(
    api: webuiapi.WebUIApi, http: httpx.Client, impasto_daemon: Daemon
) -> None:
    init = Image.new("RGB", (64, 64), (220, 40, 40))
    result = api.img2img(
        images=[init],
        prompt="a red square",
        seed=500,
        denoising_strength=0.9,
        script_name="loopback",
        script_args=[3, 0.5, "Linear", "None"],
        **SIZE,
    )
    grid, *loops = result.images
    assert len(loops) == 3 and grid.size == (3 * 64, 64)
    jobs = history(http, 3)
    assert [job["plan"]["seed"] for job in jobs] == [500, 501, 502]
    assert [round(job["plan"]["strength"], 3) for job in jobs] == [0.9, 0.7, 0.5]
    uploads = impasto_daemon.data_dir / "uploads"
    for previous, job, output in zip(jobs, jobs[1:], loops, strict=False):
        upload_id = job["request"]["init_image"].removeprefix("upload:")
        with Image.open(uploads / f"{upload_id}.png") as fed:
            assert same_pixels(fed, output)
        assert job["request"]["init_image"] != previous["request"]["init_image"]
    assert result.info["extra_generation_params"]["Denoising curve"] == "Linear"


def test_loopback_with_color_correction_keeps_the_first_images_colours(
    api: webuiapi.WebUIApi, http: httpx.Client
) -> None:
    """A1111 corrects every loop to the first init image's colours (not the last output's),
    so they do not drift; the option comes from ``override_settings``."""
    api.img2img(
        images=[Image.new("RGB", (64, 64), (40, 200, 60))],
        prompt="a green square",
        seed=7,
        script_name="loopback",
        script_args=[2, 0.5, "Linear", "None"],
        override_settings={"img2img_color_correction": True},
        **SIZE,
    )
    first, second = history(http, 2)
    assert first["plan"]["color_correction"] and second["plan"]["color_correction"]
    original = first["request"]["init_image"]
    assert second["plan"]["color_reference"] == original != second["request"]["init_image"]


def test_interrupt_stops_a_running_plot_and_its_queued_cells(
    http: httpx.Client,
) -> None:
    answer: dict[str, Any] = {}

    def run() -> None:
        answer["response"] = http.post(
            "/sdapi/v1/txt2img",
            json={
                "prompt": "a slow plot",
                "steps": 150,
                "script_name": "x/y/z plot",
                "script_args": xyz_args((SEED, "1-6", [])),
                # Over ten seconds a cell here, so the interrupt lands in the first one.
                "width": 512,
                "height": 512,
            },
        )

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        progress = http.get("/sdapi/v1/progress").json()
        if progress["state"]["sampling_step"] > 0:
            break
        time.sleep(0.05)
    assert http.post("/sdapi/v1/interrupt").status_code == 200
    thread.join(120)
    response = answer["response"]
    assert response.status_code == 200
    statuses = [job["status"] for job in history(http, 6)]
    assert statuses == ["cancelled"] * 6, statuses
    assert http.get("/api/v1/queue/").json()["total"] == 0


def test_img2img_plot_counts_img2img_axis_types_and_varies_denoising(
    api: webuiapi.WebUIApi,
) -> None:
    denoising_in_img2img = 22  # A1111's img2img list has no hires types
    result = api.img2img(
        images=[Image.new("RGB", (64, 64), (40, 90, 200))],
        prompt="a blue tile",
        seed=3,
        script_name="x/y/z plot",
        script_args=xyz_args((denoising_in_img2img, "0.3, 0.8", [])),
        **SIZE,
    )
    _, low, high = result.images
    assert [embedded(image)["extra"]["Denoising strength"] for image in (low, high)] == [
        "0.3",
        "0.8",
    ]


def test_a_batch_makes_a_small_grid_in_each_cell(api: webuiapi.WebUIApi) -> None:
    result = api.txt2img(
        prompt="two stars",
        seed=70,
        batch_size=2,
        script_name="x/y/z plot",
        script_args=xyz_args((STEPS, "1, 2", [])),
        **SIZE,
    )
    grid, *images = result.images
    # Two cells side by side, each the batch's two images in one row.
    assert grid.size == (2 * 2 * 64, 64)
    assert [embedded(image)["seed"] for image in images] == [70, 71, 70, 71]
    assert same_pixels(grid.crop((64, 0, 128, 64)), images[1])


def b64(image: Image.Image) -> str:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def test_sd_upscale_tiles_the_original_image_upscaled_by_the_factor(
    api: webuiapi.WebUIApi, http: httpx.Client, impasto_daemon: Daemon
) -> None:
    write_sr_model(impasto_daemon.data_dir / "models" / "upscalers" / "tiny-sr.onnx", scale=2)
    upscalers = [u["name"] for u in http.get("/sdapi/v1/upscalers").json()]
    source = pattern(48, 40)  # not the tile size: the script upscales the image as sent
    result = api.img2img(
        images=[source],
        prompt="a lighthouse",
        seed=11,
        n_iter=2,
        denoising_strength=0.6,
        script_name="SD upscale",
        script_args=[None, 16, upscalers.index("tiny-sr"), 2],
        **SIZE,
    )
    assert [image.size for image in result.images] == [(96, 80), (96, 80)]
    assert result.info["extra_generation_params"]["SD upscale upscaler"] == "tiny-sr"
    assert result.info["extra_generation_params"]["SD upscale overlap"] == 16
    jobs = history(http, 2)
    # Each iteration is one job of its own seed (seed + n); its progress counts four tiles of
    # two img2img steps each (2 steps at strength 0.6: int(2 x 0.6) + 1, as A1111 counts them).
    assert [job["plan"]["seed"] for job in jobs] == [11, 12]
    for job in jobs:
        assert job["plan"]["sd_upscale"]["upscaler"] == "tiny-sr"
        assert (job["current_step"], job["total_steps"]) == (8, 8)
        upload_id = job["request"]["init_image"].removeprefix("upload:")
        with Image.open(impasto_daemon.data_dir / "uploads" / f"{upload_id}.png") as fed:
            assert same_pixels(fed, source)
    # The tiles ran img2img: the result is not the upscaled image, and the seeds differ.
    extras = http.post(
        "/sdapi/v1/extra-single-image",
        json={"image": b64(source), "upscaler_1": "tiny-sr", "upscaling_resize": 2},
    )
    plain = decode(extras.json()["image"])
    assert max_diff(plain, result.images[0]) > 30
    assert not same_pixels(result.images[0], result.images[1])
    assert embedded(result.images[0])["extra"]["SD upscale upscaler"] == "tiny-sr"


def test_sd_upscale_by_upscaler_name_and_its_mistakes(http: httpx.Client) -> None:
    body = {
        "init_images": [b64(pattern(48, 40))],
        "prompt": "x",
        "steps": 2,
        "seed": 5,
        "script_name": "sd upscale",
        **SIZE,
    }
    ok = http.post("/sdapi/v1/img2img", json={**body, "script_args": ["", 16, "Lanczos", 2]})
    assert ok.status_code == 200, ok.text
    assert decode(ok.json()["images"][0]).size == (96, 80)
    for args, words in (
        (["", 16, 99, 2], "upscaler_index 99"),
        (["", 300, 1, 2], "Tile overlap"),
        (["", 16, 1, 1.2], "than a tile"),
    ):
        response = http.post("/sdapi/v1/img2img", json={**body, "script_args": args})
        assert response.status_code == 422, response.text
        detail = response.json()["detail"][0]
        assert detail["loc"][-1] == "script_args" and words in detail["msg"], detail
    masked = http.post(
        "/sdapi/v1/img2img",
        json={**body, "mask": b64(Image.new("L", (48, 40), 255)), "script_args": ["", 16, 1, 2]},
    )
    assert masked.status_code == 422 and "mask" in masked.text
    # SD upscale is an img2img script only, as in A1111.
    txt = http.post("/sdapi/v1/txt2img", json={"prompt": "x", "script_name": "SD upscale"})
    assert txt.status_code == 422 and "not found" in txt.text


def test_interrupt_stops_a_running_sd_upscale(http: httpx.Client) -> None:
    answer: dict[str, Any] = {}

    def run() -> None:
        answer["response"] = http.post(
            "/sdapi/v1/img2img",
            json={
                "init_images": [b64(pattern(48, 40))],
                "prompt": "a slow upscale",
                "steps": 150,
                "denoising_strength": 1,
                "script_name": "SD upscale",
                "script_args": ["", 16, 1, 2],
                **SIZE,
            },
        )

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        progress = http.get("/sdapi/v1/progress").json()
        if progress["state"]["sampling_step"] > 0:
            break
        time.sleep(0.05)
    assert 0 < progress["progress"] < 1
    assert http.post("/sdapi/v1/interrupt").status_code == 200
    thread.join(120)
    assert answer["response"].status_code == 200
    assert answer["response"].json()["images"] == []
    assert [job["status"] for job in history(http, 1)] == ["cancelled"]


def test_a_script_making_more_jobs_than_the_queue_takes_queues_none(
    daemon_factory: type[Daemon], tmp_path: Any
) -> None:
    # It queued jobs until the queue was full, then cancelled them: they stayed in the
    # history as cancelled jobs of a request that was refused.
    daemon = daemon_factory(tmp_path / "d", max_queue=3).start()
    with daemon.client() as client:
        assert client.post("/api/v1/queue/pause").status_code == 200
        response = client.post(
            "/sdapi/v1/txt2img",
            json={
                "prompt": "x",
                "script_name": "prompts from file or textbox",
                "script_args": [False, False, "a\nb\nc\nd"],
                **SIZE,
            },
        )
        assert response.status_code == 429, response.text
        assert "makes 4 jobs and the queue has room for 3" in response.json()["detail"]
        assert client.get("/api/v1/history").json()["items"] == []
