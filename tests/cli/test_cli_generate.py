"""`impasto generate` against a MockTransport-backed client."""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

import httpx
import pytest
from cli_fakes import JOB, CliDaemon

from impasto.cli import generate
from impasto.cli.common import folder_path, output_path, plugin_option
from impasto.cli.generate import OPTIONS
from impasto.cli.generate_args import lora_spec
from impasto.cli.main import build_parser, main
from impasto.client import Client


def test_generate_saves_every_image_and_prints_the_paths(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    daemon = CliDaemon(batch=2)
    out = tmp_path / "out"
    argv = [
        "generate",
        "a lighthouse",
        "--cfg",
        "5.5",
        "--batch",
        "2",
        "--steps",
        "2",
        "--negative",
        "fog",
        "--schedule",
        "karras",
        "--eta",
        "0.5",
        "--seed-resize-from",
        "512x768",
        "--rng",
        "cpu",
        "-o",
        str(out),
    ]
    assert main(argv, connect=daemon.client) == 0
    printed = capsys.readouterr()
    expected = [out / f"{JOB}-{i}.png" for i in range(2)]
    assert printed.out.splitlines() == [str(p) for p in expected]
    assert [p.read_bytes() for p in expected] == [daemon.images[0], daemon.images[1]]
    # stderr is not a terminal here: plain progress lines, no carriage-return redraws.
    assert "\r" not in printed.err
    assert [line for line in printed.err.splitlines() if "%" in line] == [
        "  0% started",
        " 50% step 1/2",
        "100% step 2/2",
    ]
    body = json.loads(daemon.requests[0].content)
    assert body == {
        "prompt": "a lighthouse",
        "cfg_scale": 5.5,
        "batch_size": 2,
        "steps": 2,
        "negative_prompt": "fog",
        "schedule": "karras",
        "eta": 0.5,
        "seed_resize_from_width": 512,
        "seed_resize_from_height": 768,
        "rng": "cpu",
    }


def test_generate_uploads_init_image_and_mask(tmp_path: Path) -> None:
    init, mask = tmp_path / "init.png", tmp_path / "mask.png"
    init.write_bytes(b"init")
    mask.write_bytes(b"mask")
    daemon = CliDaemon(batch=1)
    argv = [
        "generate",
        "x",
        "--init-image",
        str(init),
        "--mask",
        str(mask),
        "--strength",
        "0.4",
        "-o",
        str(tmp_path),
        "--quiet",
    ]
    assert main(argv, connect=daemon.client) == 0
    uploads = [r for r in daemon.requests if r.url.path == "/api/v1/images"]
    assert [b"init" in r.content for r in uploads] == [True, False]
    submit = next(r for r in daemon.requests if r.url.path == "/api/v1/generate")
    body = json.loads(submit.content)
    assert (body["init_image"], body["mask_image"], body["strength"]) == (
        "upload:up-7",
        "upload:up-7",
        0.4,
    )


def test_rejected_request_names_the_field(capsys: pytest.CaptureFixture[str]) -> None:
    daemon = CliDaemon()
    daemon.overrides[("POST", "/api/v1/generate")] = httpx.Response(
        422,
        json={
            "status_code": 422,
            "detail": "Invalid request",
            "errors": [
                {"field": "width", "message": "must be a multiple of 8 between 64 and 2048"}
            ],
        },
    )
    assert main(["generate", "x", "--width", "65"], connect=daemon.client) == 1
    err = capsys.readouterr().err
    assert "width: must be a multiple of 8" in err
    assert "Invalid request" in err


def test_failed_job_exits_1_with_the_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    daemon = CliDaemon(outcome="failed")
    out = tmp_path / "out"
    assert main(["generate", "x", "-o", str(out)], connect=daemon.client) == 1
    assert "out of memory: try a smaller size" in capsys.readouterr().err
    assert not out.exists()


def test_ctrl_c_cancels_the_job(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    daemon = CliDaemon()
    daemon.interrupt_stream = True
    assert main(["generate", "x", "-o", str(tmp_path)], connect=daemon.client) == 130
    cancels = [r for r in daemon.requests if r.url.path == f"/api/v1/generate/{JOB}/cancel"]
    assert len(cancels) == 1 and cancels[0].method == "POST"
    assert f"Cancelling job {JOB}" in capsys.readouterr().err


def test_detach_prints_the_id_without_waiting(capsys: pytest.CaptureFixture[str]) -> None:
    daemon = CliDaemon()
    assert main(["generate", "x", "--detach"], connect=daemon.client) == 0
    assert capsys.readouterr().out.strip() == JOB
    assert [r.url.path for r in daemon.requests] == ["/api/v1/generate"]


def test_an_output_folder_that_cannot_be_made_is_reported_before_submitting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    daemon = CliDaemon()
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    assert main(["generate", "x", "-o", str(blocker / "out")], connect=daemon.client) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err and str(blocker) in err
    assert not daemon.requests  # no job was queued for pictures that could not be saved


def test_a_failed_job_leaves_no_folder_behind(tmp_path: Path) -> None:
    daemon = CliDaemon(outcome="failed")
    out = tmp_path / "new" / "nested"
    assert main(["generate", "x", "-o", str(out)], connect=daemon.client) == 1
    assert not (tmp_path / "new").exists()


def numeric_options() -> list[tuple[str, str, str]]:
    """(command, flag, value with {} for the number) for every option of a client command
    whose value is parsed, not passed on as text: a number, a size, a LoRA's weight."""
    commands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    found = []
    for name, parser in commands.choices.items():
        if name in ("serve", "config"):  # not clients; serve's settings check their own values
            continue
        for action in parser._actions:
            paths = (None, str, Path, output_path, folder_path)
            if not action.option_strings or action.choices or action.type in paths:
                continue
            value = {lora_spec: "x:{}", plugin_option: "x={}"}.get(action.type, "{}")
            found.append((name, action.option_strings[-1], value))
    return found


def test_every_numeric_option_is_listed() -> None:
    listed = {(command, flag) for command, flag, _ in numeric_options()}
    expected = {("generate", "--cfg"), ("generate", "--lora"), ("generate", "--hires")}
    assert expected | {("generate", "--strength"), ("upscale", "--scale")} <= listed


@pytest.mark.parametrize("number", ["nan", "inf", "-inf", "1e999"])
def test_a_number_json_cannot_carry_is_a_usage_error_without_a_request(
    number: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """JSON has no NaN or infinity: refused while parsing, exit 2 as every usage error."""
    picture = tmp_path / "picture.png"
    picture.write_bytes(b"png")  # a file there, so only the number can be what is refused
    positionals = {"generate": ["x"], "upscale": [str(picture)]}
    daemon = CliDaemon()
    for command, flag, value in numeric_options():
        argv = [command, *positionals.get(command, []), f"{flag}={value.format(number)}"]
        assert main(argv, connect=daemon.client) == 2, argv
        err = capsys.readouterr().err
        assert "must be" in err or "invalid" in err or "not a" in err, err
    assert not daemon.requests


def test_missing_init_image_is_reported_before_submitting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    daemon = CliDaemon()
    argv = ["generate", "x", "--init-image", str(tmp_path / "nope.png")]
    assert main(argv, connect=daemon.client) == 2  # a usage error, as `impasto upscale`'s
    assert "error: --init-image: " in capsys.readouterr().err
    argv = ["generate", "x", "--init-image", str(tmp_path), "--mask", str(tmp_path / "no.png")]
    assert main(argv, connect=daemon.client) == 2
    assert f"error: --init-image: {tmp_path} is not a file" in capsys.readouterr().err
    assert daemon.requests == []


@pytest.mark.parametrize("flag", ["--init-image", "--mask", "--color-reference"])
def test_a_picture_the_daemon_refuses_is_named_by_its_option(
    flag: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The upload's multipart field is "file"; the message names what the user wrote."""
    daemon = CliDaemon()
    rule = "is not a readable PNG, JPEG or WebP image"
    refusal = httpx.Response(
        422,
        json={
            "status_code": 422,
            "detail": f"file: {rule}",
            "errors": [{"field": "file", "message": rule}],
        },
    )
    accept = daemon.handle

    def handle(request: httpx.Request) -> httpx.Response:  # refuses the text file only
        upload = request.url.path == "/api/v1/images"
        return refusal if upload and b"not a picture" in request.read() else accept(request)

    daemon.handle = handle  # type: ignore[method-assign]
    text = tmp_path / "notes.txt"
    text.write_text("not a picture")
    picture = tmp_path / "init.png"
    picture.write_bytes(b"\x89PNG a picture")
    # A mask and a colour reference come with the init image they are for.
    start = [] if flag == "--init-image" else ["--init-image", str(picture)]
    assert main(["generate", "x", *start, flag, str(text)], connect=daemon.client) == 1
    err = capsys.readouterr().err
    assert f"error: {flag} {text}: {rule} (HTTP 422)" in err
    assert "file:" not in err
    assert not [r for r in daemon.requests if r.url.path == "/api/v1/generate"]


@pytest.mark.parametrize(
    ("flag", "expected"),
    [
        ("2x", {"scale": 2.0}),
        ("1.5", {"scale": 1.5}),
        ("1024x768", {"width": 1024, "height": 768}),
    ],
)
def test_hires_flags_become_the_hires_object(
    tmp_path: Path, flag: str, expected: dict[str, object]
) -> None:
    daemon = CliDaemon(batch=1)
    argv = ["generate", "x", "--hires", flag, "--hires-steps", "8", "--hires-sampler", "DPM2"]
    argv += ["--hires-upscaler", "latent-bicubic", "--hires-strength", "0.5", "-o", str(tmp_path)]
    argv += ["--hires-schedule", "karras"]
    assert main(argv, connect=daemon.client) == 0
    body = json.loads(daemon.requests[0].content)
    assert body["hires"] == {
        **expected,
        "upscaler": "latent-bicubic",
        "steps": 8,
        "strength": 0.5,
        "sampler": "DPM2",
        "schedule": "karras",
    }


def test_sampler_noise_flags_become_request_fields(tmp_path: Path) -> None:
    daemon = CliDaemon(batch=1)
    argv = ["generate", "x", "--sampler", "heun", "--s-churn", "2", "--s-tmin", "0.1"]
    argv += ["--s-tmax", "8", "--s-noise", "1.003", "--noise-seed-delta", "31337"]
    assert main([*argv, "-o", str(tmp_path)], connect=daemon.client) == 0
    body = json.loads(daemon.requests[0].content)
    churn = {key: body[key] for key in ("s_churn", "s_tmin", "s_tmax", "s_noise")}
    assert churn == {"s_churn": 2.0, "s_tmin": 0.1, "s_tmax": 8.0, "s_noise": 1.003}
    assert body["noise_seed_delta"] == 31337


def test_schedule_bound_flags_become_request_fields(tmp_path: Path) -> None:
    daemon = CliDaemon(batch=1)
    argv = ["generate", "x", "--schedule", "karras", "--sigma-min", "0.1", "--sigma-max", "9"]
    argv += ["--rho", "5", "-o", str(tmp_path)]
    assert main(argv, connect=daemon.client) == 0
    body = json.loads(daemon.requests[0].content)
    bounds = {key: body[key] for key in ("schedule", "sigma_min", "sigma_max", "rho")}
    assert bounds == {"schedule": "karras", "sigma_min": 0.1, "sigma_max": 9.0, "rho": 5.0}


def test_negative_pass_skip_and_discard_flags_become_request_fields(tmp_path: Path) -> None:
    daemon = CliDaemon(batch=1)
    argv = ["generate", "x", "--s-min-uncond", "1.5", "--s-min-uncond-all"]
    argv += ["--skip-early-cond", "0.2", "--discard-penultimate-sigma", "-o", str(tmp_path)]
    assert main(argv, connect=daemon.client) == 0
    body = json.loads(daemon.requests[0].content)
    assert body["discard_penultimate_sigma"] is True
    skip = {key: body[key] for key in ("s_min_uncond", "s_min_uncond_all", "skip_early_cond")}
    assert skip == {"s_min_uncond": 1.5, "s_min_uncond_all": True, "skip_early_cond": 0.2}
    plain = CliDaemon(batch=1)
    assert main(["generate", "x", "-o", str(tmp_path)], connect=plain.client) == 0
    assert "s_min_uncond_all" not in json.loads(plain.requests[0].content)


def test_the_sgm_noise_multiplier_flag_becomes_the_request_field(tmp_path: Path) -> None:
    daemon = CliDaemon(batch=1)
    argv = ["generate", "x", "--sgm-noise-multiplier", "-o", str(tmp_path)]
    assert main(argv, connect=daemon.client) == 0
    assert json.loads(daemon.requests[0].content)["sgm_noise_multiplier"] is True
    plain = CliDaemon(batch=1)
    assert main(["generate", "x", "-o", str(tmp_path)], connect=plain.client) == 0
    assert "sgm_noise_multiplier" not in json.loads(plain.requests[0].content)


def test_the_unipc_flags_become_the_request_fields(tmp_path: Path) -> None:
    daemon = CliDaemon(batch=1)
    argv = ["generate", "x", "--sampler", "unipc", "--unipc-order", "3", "--unipc-variant", "bh1"]
    assert main([*argv, "-o", str(tmp_path)], connect=daemon.client) == 0
    body = json.loads(daemon.requests[0].content)
    assert (body["unipc_order"], body["unipc_variant"]) == (3, "bh1")


def test_the_img2img_steps_flag_becomes_the_request_field(tmp_path: Path) -> None:
    daemon = CliDaemon(batch=1)
    argv = ["generate", "x", "--hires", "1.5", "--img2img-steps", "exact", "-o", str(tmp_path)]
    assert main(argv, connect=daemon.client) == 0
    assert json.loads(daemon.requests[0].content)["img2img_steps"] == "exact"
    sent = len(daemon.requests)
    assert main(["generate", "x", "--img2img-steps", "comfy"], connect=daemon.client) == 2
    assert len(daemon.requests) == sent  # a usage error sends nothing


def test_a_bad_hires_size_is_refused_before_submitting(
    capsys: pytest.CaptureFixture[str],
) -> None:
    daemon = CliDaemon(batch=1)
    assert main(["generate", "x", "--hires", "big"], connect=daemon.client) == 2
    assert "1024x768" in capsys.readouterr().err
    assert daemon.requests == []


def test_adapter_flags_become_request_fields(tmp_path: Path) -> None:
    daemon = CliDaemon(batch=1)
    argv = ["generate", "x", "--lora", "tiny-kohya", "--lora", "ink:style:-0.5", "--vae", "alt"]
    argv += ["--clip-skip", "2", "--refiner", "xl-refiner", "--refiner-switch", "0.7"]
    assert main([*argv, "-o", str(tmp_path)], connect=daemon.client) == 0
    body = json.loads(daemon.requests[0].content)
    # A name may hold colons; the weight is what follows the last one.
    assert body["loras"] == [{"name": "tiny-kohya"}, {"name": "ink:style", "weight": -0.5}]
    assert (body["vae"], body["clip_skip"]) == ("alt", 2)
    assert (body["refiner"], body["refiner_switch"]) == ("xl-refiner", 0.7)


def test_tiling_is_sent_only_when_asked_for(tmp_path: Path) -> None:
    daemon = CliDaemon(batch=1)
    assert main(["generate", "x", "--tiling", "-o", str(tmp_path)], connect=daemon.client) == 0
    assert main(["generate", "x", "-o", str(tmp_path)], connect=daemon.client) == 0
    one_axis = ["generate", "x", "--tiling-axis", "y", "-o", str(tmp_path)]
    assert main(one_axis, connect=daemon.client) == 0
    posts = [r for r in daemon.requests if r.method == "POST" and r.url.path.endswith("/generate")]
    bodies = [json.loads(request.content) for request in posts]
    assert bodies[0]["tiling"] is True and "tiling" not in bodies[1]
    assert bodies[2]["tiling"] == "y"


def test_a_lora_weight_that_is_not_a_number_is_refused_before_submitting(
    capsys: pytest.CaptureFixture[str],
) -> None:
    daemon = CliDaemon(batch=1)
    assert main(["generate", "x", "--lora", "ink:heavy"], connect=daemon.client) == 2
    assert "not a number" in capsys.readouterr().err
    assert daemon.requests == []


def test_on_a_terminal_the_bar_is_redrawn_in_place() -> None:
    from impasto.cli.progress import ProgressBar
    from impasto.wire import Event

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    screen = Terminal()
    bar = ProgressBar(screen, width=10)
    bar.update(Event(seq=1, type="started", job_id="j", data={}))
    for step in (1, 2):
        data = {"step": step, "total": 2, "progress": step / 2}
        bar.update(Event(seq=1 + step, type="progress", job_id="j", data=data))
    bar.close()
    assert screen.getvalue().split("\r")[1:] == [
        "[----------]   0% started   ",
        "[#####-----]  50% step 1/2   ",
        "[##########] 100% step 2/2   \n",
    ]


def test_the_inpaint_mask_weight_flag_becomes_the_request_field(tmp_path: Path) -> None:
    daemon = CliDaemon(batch=1)
    argv = ["generate", "x", "--inpaint-mask-weight", "0.25", "-o", str(tmp_path)]
    assert main(argv, connect=daemon.client) == 0
    assert json.loads(daemon.requests[0].content)["inpaint_mask_weight"] == 0.25
    plain = CliDaemon(batch=1)
    assert main(["generate", "x", "-o", str(tmp_path)], connect=plain.client) == 0
    assert "inpaint_mask_weight" not in json.loads(plain.requests[0].content)


def test_the_resize_mode_flag_becomes_the_request_field(tmp_path: Path) -> None:
    init = tmp_path / "init.png"
    init.write_bytes(b"init")
    daemon = CliDaemon(batch=1)
    argv = [
        "generate",
        "x",
        "--init-image",
        str(init),
        "--resize-mode",
        "crop",
        "-o",
        str(tmp_path),
    ]
    assert main(argv, connect=daemon.client) == 0
    submit = next(r for r in daemon.requests if r.url.path == "/api/v1/generate")
    assert json.loads(submit.content)["resize_mode"] == "crop"
    sent = len(daemon.requests)
    assert main(["generate", "x", "--resize-mode", "cover"], connect=daemon.client) != 0
    assert len(daemon.requests) == sent  # the bad choice sent nothing


@pytest.mark.parametrize(
    ("argv", "stray", "needed"),
    [
        (["--strength", "0.5"], "--strength", "--init-image"),
        (
            ["--resize-mode", "crop", "--noise-multiplier", "0.9"],
            "--resize-mode, --noise-multiplier",
            "--init-image",
        ),
        (["--mask", "m.png"], "--mask", "--init-image"),
        (["--init-image", "i.png", "--masked-content", "fill"], "--masked-content", "--mask"),
        (["--refiner-switch", "0.7"], "--refiner-switch", "--refiner"),
    ],
)
def test_a_flag_that_means_nothing_alone_is_a_usage_error(
    argv: list[str], stray: str, needed: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The daemon would take a txt2img with --strength and ignore it: a picture that is not
    what was asked, without a word."""
    for name in ("m.png", "i.png"):
        (tmp_path / name).write_bytes(b"picture")
    argv = [tmp_path / a if a.endswith(".png") else a for a in argv]
    daemon = CliDaemon(batch=1)
    assert main(["generate", "x", *map(str, argv)], connect=daemon.client) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {stray}: only with {needed}"), err
    assert daemon.requests == []


def test_the_color_correction_flags_become_the_request_fields(tmp_path: Path) -> None:
    init, reference = tmp_path / "init.png", tmp_path / "colours.png"
    init.write_bytes(b"init")
    reference.write_bytes(b"colours")
    daemon = CliDaemon(batch=1)
    argv = ["generate", "x", "--init-image", str(init), "--color-correction"]
    argv += ["--color-reference", str(reference), "-o", str(tmp_path), "--quiet"]
    assert main(argv, connect=daemon.client) == 0
    uploads = [r for r in daemon.requests if r.url.path == "/api/v1/images"]
    assert [b"colours" in r.content for r in uploads] == [False, True]
    submit = next(r for r in daemon.requests if r.url.path == "/api/v1/generate")
    body = json.loads(submit.content)
    assert (body["color_correction"], body["color_reference"]) == (True, "upload:up-7")
    missing = ["generate", "x", "--color-reference", str(tmp_path / "none.png")]
    assert main(missing, connect=daemon.client) != 0


def test_the_warnings_of_a_finished_job_are_printed_on_stderr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    daemon = CliDaemon(batch=1)
    unmatched = "LoRA tiny-kohya.safetensors: 28 keys matched no weight of this model"
    daemon.warnings = [unmatched]
    assert main(["generate", "x", "--quiet", "-o", str(tmp_path)], connect=daemon.client) == 0
    printed = capsys.readouterr()
    assert f"warning: {unmatched}\n" in printed.err
    assert "warning:" not in printed.out  # stdout stays the saved paths alone
    assert main(["generate", "x", "--quiet", "-o", str(tmp_path)], connect=CliDaemon().client) == 0
    assert "warning:" not in capsys.readouterr().err


def test_saving_never_replaces_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The same job's pictures saved twice (`history --save` again, a file of that name)."""
    taken = tmp_path / f"{JOB}-0.png"
    taken.write_bytes(b"mine")
    daemon = CliDaemon(batch=2)
    assert main(["generate", "x", "--quiet", "-o", str(tmp_path)], connect=daemon.client) == 0
    written = [tmp_path / f"{JOB}-0-1.png", tmp_path / f"{JOB}-1.png"]
    assert capsys.readouterr().out.splitlines() == [str(path) for path in written]
    assert taken.read_bytes() == b"mine"
    assert [path.read_bytes() for path in written] == [daemon.images[0], daemon.images[1]]


@pytest.mark.parametrize(
    ("field", "named"),
    [
        ("cfg_scale", "cfg_scale (--cfg)"),
        ("batch_size", "batch_size (--batch)"),
        ("loras[1].weight", "loras[1].weight (--lora)"),
        ("hires.steps", "hires.steps (--hires-steps)"),
        ("mask_image", "mask_image (--mask)"),
        ("width", "width"),  # the option is the field's name: said once
    ],
)
def test_a_refused_field_names_the_option_that_filled_it(
    field: str, named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    daemon = CliDaemon()
    rule = "must be a number between 0 and 30"
    daemon.overrides[("POST", "/api/v1/generate")] = httpx.Response(
        422,
        json={
            "status_code": 422,
            "detail": f"{field}: {rule}",
            "errors": [{"field": field, "message": rule}],
        },
    )
    assert main(["generate", "x"], connect=daemon.client) == 1
    assert capsys.readouterr().err == f"error: {named}: {rule} (HTTP 422)\n"


def test_every_option_a_refusal_can_name_exists() -> None:
    commands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    flags = {s for a in commands.choices["generate"]._actions for s in a.option_strings}
    assert set(OPTIONS.values()) <= flags


def test_a_daemon_that_stops_under_the_job_says_the_job_is_kept(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The queue is persistent: the job runs again when the daemon starts, and the user is
    told so and how to fetch it, rather than only that the daemon is not running."""
    monkeypatch.setattr(generate, "RECONNECT_GRACE_S", 0.3)
    monkeypatch.setattr(generate, "RECONNECT_POLL_S", 0.05)
    daemon = CliDaemon()

    def stopping(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/v1/generate" or not any(
            r.url.path == "/api/v1/generate" for r in daemon.requests
        ):
            return daemon.handle(request)
        daemon.requests.append(request)
        raise httpx.ConnectError("connection refused", request=request)

    def connect(_args: object = None) -> Client:
        return Client(transport=httpx.MockTransport(stopping))

    out = tmp_path / "new"
    assert main(["generate", "x", "-o", str(out)], connect=connect) == 3
    err = capsys.readouterr().err
    assert f"The daemon stopped; job {JOB} is kept and runs when it starts again" in err
    assert "impasto history --save DIR" in err and "Impasto is not running" in err
    assert "waiting up to 0.3 s for it to come back" in err
    assert not out.exists()


def test_generate_follows_its_job_again_when_the_daemon_comes_back(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A crashed daemon restarted by the tray or a service manager runs the job again: the
    command waited for nothing ("not running") where it now follows the job to its end."""
    monkeypatch.setattr(generate, "RECONNECT_POLL_S", 0.01)
    daemon = CliDaemon(batch=1)
    refused = {"left": 0, "streams": 0}

    def restarting(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/v1/events":
            refused["streams"] += 1
            if refused["streams"] == 1:  # the daemon goes down under the first stream
                refused["left"] = 3
        if refused["left"]:
            refused["left"] -= 1
            raise httpx.ConnectError("connection refused", request=request)
        return daemon.handle(request)

    def connect(_args: object = None) -> Client:
        return Client(transport=httpx.MockTransport(restarting))

    out = tmp_path / "pictures"
    assert main(["generate", "x", "-o", str(out)], connect=connect) == 0
    err = capsys.readouterr().err
    assert "waiting up to 60 s for it to come back" in err
    assert f"The daemon is back; following job {JOB}" in err
    assert (out / f"{JOB}-0.png").read_bytes() == b"PNG-0"


def test_plugin_options_are_json_else_text_and_a_bare_name_is_true() -> None:
    daemon = CliDaemon()
    argv = ["generate", "x", "--detach", "--plugin", "upscale=2", "--plugin", "styles=cinematic"]
    argv += ["--plugin", 'tags=["a", "b"]', "--plugin", "watermark", "--plugin", "note=a=b"]
    assert main(argv, connect=daemon.client) == 0
    assert json.loads(daemon.requests[0].content)["plugins"] == {
        "upscale": 2,
        "styles": "cinematic",
        "tags": ["a", "b"],
        "watermark": True,
        "note": "a=b",
    }


def test_quiet_prints_only_the_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    daemon = CliDaemon(batch=1)
    assert main(["generate", "x", "-o", str(tmp_path), "--quiet"], connect=daemon.client) == 0
    out, err = capsys.readouterr()
    assert "Queued job" not in err and str(tmp_path) in out, (out, err)
    assert main(["generate", "x", "-o", str(tmp_path)], connect=daemon.client) == 0
    assert "Queued job" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["door.jpg", "door.WEBP"])
def test_an_output_named_as_another_picture_type_is_a_usage_error(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """It would become a folder of that name holding PNGs."""
    daemon = CliDaemon(batch=1)
    target = tmp_path / name
    assert main(["generate", "x", "-o", str(target)], connect=daemon.client) == 2
    assert "the pictures are PNGs" in capsys.readouterr().err
    assert daemon.requests == [] and not target.exists()


def test_history_saves_into_a_folder_not_standard_output(
    capsys: pytest.CaptureFixture[str],
) -> None:
    daemon = CliDaemon(batch=1)
    assert main(["history", "--save", "-"], connect=daemon.client) == 2
    assert "--save: saves into a folder" in capsys.readouterr().err
    assert daemon.requests == []
