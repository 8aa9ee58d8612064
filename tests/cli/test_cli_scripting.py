"""The CLI in scripts and pipes: `-o -`, `--json`, relative paths, and usage errors that name
the option and what it takes (never a traceback)."""

from __future__ import annotations

import io
import json
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cli_fakes import JOB, CliDaemon, sse, status

from impasto.cli.main import main
from impasto.client import Client


def test_output_dash_writes_the_picture_to_stdout(
    tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    daemon = CliDaemon(batch=1)
    assert main(["generate", "x", "-o", "-"], connect=daemon.client) == 0
    assert capsysbinary.readouterr().out == daemon.images[0]
    assert not (tmp_path / "-").exists()  # no folder named "-"


def test_output_dash_is_refused_where_it_cannot_hold_the_picture(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    daemon = CliDaemon(batch=2)
    assert main(["generate", "x", "-o", "-", "--batch", "2"], connect=daemon.client) == 2
    assert "give -o DIR for a --batch" in capsys.readouterr().err
    assert main(["generate", "x", "-o", "-", "--json"], connect=daemon.client) == 2
    assert "--json and -o - both write to standard output" in capsys.readouterr().err
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    assert main(["generate", "x", "-o", "-"], connect=daemon.client) == 2
    assert "which is a terminal here" in capsys.readouterr().err
    assert not daemon.requests


def test_upscale_reads_dash_from_stdin_and_writes_dash_to_stdout(
    tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    daemon = CliDaemon()
    daemon.overrides[("POST", "/api/v1/upscale")] = httpx.Response(200, content=b"BIG-PNG")
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"SMALL-PNG")))
    assert main(["upscale", "-", "-o", "-"], connect=daemon.client) == 0
    assert capsysbinary.readouterr().out == b"BIG-PNG"
    body = json.loads(daemon.requests[0].content)
    assert body["image"] == "U01BTEwtUE5H"  # base64 of what came in on stdin
    assert not (tmp_path / "-").exists() and not list(tmp_path.glob("*.png"))


def test_generate_json_prints_the_job_with_its_seeds_and_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    daemon = CliDaemon(batch=2)
    assert main(["generate", "x", "--json", "-o", str(tmp_path)], connect=daemon.client) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["files"] == [str(tmp_path / f"{JOB}-{i}.png") for i in range(2)]
    assert [r["seed"] for r in printed["job"]["results"]] == [100, 101]
    assert printed["job"]["status"] == "completed"
    assert main(["generate", "x", "--json", "--detach"], connect=daemon.client) == 0
    assert json.loads(capsys.readouterr().out) == {"id": JOB, "position": 0}


def test_generate_json_of_a_failed_job_says_why_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    daemon = CliDaemon(outcome="failed")
    assert main(["generate", "x", "--json", "-o", str(tmp_path)], connect=daemon.client) == 1
    printed = json.loads(capsys.readouterr().out)
    assert printed["job"]["error"] == "out of memory: try a smaller size"
    assert printed["files"] == []


def test_hires_flags_without_hires_are_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    """They were dropped without a word: the picture came out without its second pass."""
    daemon = CliDaemon()
    argv = ["generate", "x", "--hires-steps", "10", "--hires-strength", "0.4"]
    assert main(argv, connect=daemon.client) == 2
    err = capsys.readouterr().err
    assert "--hires-steps, --hires-strength: the hires pass is off without --hires" in err
    assert not daemon.requests


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["generate", "x", "--steps", "many"], "--steps: 'many': must be an integer between 1"),
        (["generate", "x", "--cfg", "high"], "--cfg: 'high': must be a number between 0 and 30"),
        (["generate", "x", "--hires-steps", "1.5"], "'1.5': must be an integer between 0 and 150"),
        (["history", "-n", "abc"], "-n/--limit: 'abc': must be an integer of 1 or more"),
    ],
)
def test_a_value_that_is_not_a_number_names_the_option_and_its_range(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    daemon = CliDaemon()
    assert main(argv, connect=daemon.client) == 2
    err = capsys.readouterr().err
    assert message in err and "_positive" not in err
    # generate's forty lines of flags are summed up: the error is not lost above them.
    assert len(err.splitlines()) <= 5, err
    assert not daemon.requests


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://[::1", "Invalid port"),
        ("http://127.0.0.1:99999", "the port must be between 1 and 65535"),
        ("http://:8080", "it names no host"),
    ],
)
def test_a_malformed_address_is_a_usage_error_not_a_traceback(
    url: str, why: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert main(["status", "--url", url]) == 2
    err = capsys.readouterr().err
    assert f"--url {url!r} is not the daemon's address" in err and why in err
    monkeypatch.setenv("IMPASTO_URL", url)
    assert main(["status"]) == 2
    assert f"IMPASTO_URL {url!r} is not the daemon's address" in capsys.readouterr().err


def test_a_token_a_header_cannot_carry_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # "é" was a UnicodeEncodeError traceback from inside httpx.
    assert main(["status", "--url", "http://127.0.0.1:9", "--token", "clé"]) == 2
    assert "--token: a token is printable ASCII" in capsys.readouterr().err
    monkeypatch.setenv("IMPASTO_TOKEN", "a\nb")
    assert main(["status", "--url", "http://127.0.0.1:9"]) == 2
    assert "IMPASTO_TOKEN: a token is printable ASCII" in capsys.readouterr().err


def test_an_unexpected_error_is_one_line_not_a_traceback(
    capsys: pytest.CaptureFixture[str],
) -> None:
    def connect(_args: object) -> Client:
        raise LookupError("a bug")

    assert main(["queue"], connect=connect) == 1
    err = capsys.readouterr().err
    assert err == (
        "error: impasto queue failed unexpectedly (LookupError: a bug); please report it with "
        "the command you ran\n"
    )


def test_pull_sends_a_relative_path_as_this_folder_finds_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The daemon runs in another folder: `pull ./model.safetensors` looked for it there."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"weights")
    (tmp_path / "owner").mkdir()  # not "owner/name": that stays a hub repo id
    sent: list[dict[str, object]] = []
    task = {"id": "task-1", "model_id": "m", "source": "s", "status": "running"}

    def handle(request: httpx.Request) -> httpx.Response:
        sent.append(json.loads(request.content))
        return httpx.Response(202, json=task)

    def connect(_args: object) -> Client:
        return Client(transport=httpx.MockTransport(handle))

    for source in ("./model.safetensors", "model.safetensors", "sd-turbo", "owner/name"):
        assert main(["pull", source, "--no-wait"], connect=connect) == 0
    argv = ["pull", "owner/name", "--diffusers-config", "./configs", "--no-wait"]
    assert main(argv, connect=connect) == 0
    here = str(tmp_path / "model.safetensors")
    assert [body["source"] for body in sent] == [here, here, "sd-turbo", "owner/name", "owner/name"]
    assert sent[-1]["config"] == os.path.join(tmp_path, "configs")


class ClosedAfterFirstWrite(io.StringIO):
    """A pipe whose reader went away after the first thing written (`| head -1`)."""

    def write(self, text: str) -> int:
        if self.getvalue():
            raise BrokenPipeError
        return super().write(text)


def test_a_reader_that_stops_costs_no_picture(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`generate --batch 4 | head -1` saved the pictures up to the closed pipe, not the rest."""
    daemon = CliDaemon(batch=3)
    monkeypatch.setattr(sys, "stdout", ClosedAfterFirstWrite())
    assert main(["generate", "x", "-o", str(tmp_path)], connect=daemon.client) == 141
    assert sorted(p.name for p in tmp_path.glob("*.png")) == [f"{JOB}-{i}.png" for i in range(3)]


def test_an_empty_picture_is_named_as_empty_without_a_request(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Sent as "", the daemon answered "image: must be text"."""
    empty = tmp_path / "empty.png"
    empty.touch()
    daemon = CliDaemon()
    assert main(["upscale", str(empty)], connect=daemon.client) == 1
    err = capsys.readouterr().err
    assert err == f"error: {empty}: is empty, not a PNG, JPEG or WebP image\n"
    assert not daemon.requests


def test_a_prompt_or_error_over_several_lines_keeps_one_row_per_job(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A newline in a prompt split its row in two, so `history | head -2` or `wc -l` lied."""
    job = status("failed", error="worker stopped\nout of memory")
    job["request"]["prompt"] = "first line\nsecond\tline"
    daemon = CliDaemon()
    daemon.overrides[("GET", "/api/v1/history")] = httpx.Response(200, json={"items": [job]})
    daemon.overrides[("GET", "/api/v1/queue")] = httpx.Response(200, json={"items": [job]})
    assert main(["history"], connect=daemon.client) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].endswith("first line second line")
    assert lines[2:] == ["  worker stopped", "  out of memory"]
    assert main(["queue"], connect=daemon.client) == 0
    assert capsys.readouterr().out.splitlines()[1].endswith("first line second line")


def test_output_naming_a_png_file_saves_the_picture_as_that_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`-o door.png` made a folder named door.png with the picture inside it."""
    one = CliDaemon(batch=1)
    assert main(["generate", "x", "-o", str(tmp_path / "door.png")], connect=one.client) == 0
    assert main(["generate", "x", "-o", str(tmp_path / "door.png")], connect=one.client) == 0
    batch = CliDaemon(batch=2)
    assert (
        main(["generate", "x", "-o", str(tmp_path / "new" / "cat.png")], connect=batch.client) == 0
    )
    expected = [tmp_path / n for n in ("door.png", "door-1.png", "new/cat-0.png", "new/cat-1.png")]
    assert capsys.readouterr().out.splitlines() == [str(path) for path in expected]
    assert [path.read_bytes() for path in expected] == [b"PNG-0", b"PNG-0", b"PNG-0", b"PNG-1"]
    (tmp_path / "folder.png").mkdir()  # a folder already there stays the folder
    assert main(["generate", "x", "-o", str(tmp_path / "folder.png")], connect=one.client) == 0
    assert (tmp_path / "folder.png" / f"{JOB}-0.png").is_file()


def test_ctrl_c_while_waiting_for_a_stopped_daemon_exits_130_and_keeps_the_job(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """It exited 3 ("not running"), where every other Ctrl+C exits 130."""
    daemon = CliDaemon()

    def stopping(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/v1/generate":
            return daemon.handle(request)
        if request.url.path == "/api/v1/health":  # `generate` waits for it: Ctrl+C
            raise KeyboardInterrupt
        raise httpx.ConnectError("connection refused", request=request)

    monkeypatch.setattr("impasto.cli.generate.RECONNECT_GRACE_S", 5.0)
    connect = lambda _args=None: Client(transport=httpx.MockTransport(stopping))  # noqa: E731
    assert main(["generate", "x", "-o", str(tmp_path / "new")], connect=connect) == 130
    assert f"job {JOB} is kept and runs when it starts again" in capsys.readouterr().err
    assert not (tmp_path / "new").exists()


def test_choices_are_taken_as_a1111_writes_them(tmp_path: Path) -> None:
    """`--sampler "Euler a"` worked where `--schedule Karras` was an invalid choice."""
    daemon = CliDaemon()
    argv = ["generate", "x", "--detach", "--schedule", "SGM Uniform", "--rng", "CPU"]
    assert main([*argv, "--hires", "2x", "--hires-schedule", "Karras"], connect=daemon.client) == 0
    body = json.loads(daemon.requests[0].content)
    assert (body["schedule"], body["rng"], body["hires"]["schedule"]) == (
        "sgm_uniform",
        "cpu",
        "karras",
    )


def test_the_apis_base_url_names_the_daemon(capsys: pytest.CaptureFixture[str]) -> None:
    """`--url http://HOST:PORT/api/v1`, as curl examples write it, was `Not Found (HTTP 404)`."""
    assert main(["status", "--url", "http://127.0.0.1:9/api/v1/"]) == 3
    assert "nothing answers at http://127.0.0.1:9)" in capsys.readouterr().err


def test_a_job_queued_while_the_queue_is_paused_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """It waited without a word until someone ran `impasto queue resume`."""
    daemon = CliDaemon()
    daemon.paused = True
    assert main(["generate", "x", "-o", str(tmp_path)], connect=daemon.client) == 0
    err = capsys.readouterr().err
    assert f"The queue is paused: job {JOB} waits for `impasto queue resume` (Ctrl+C" in err
    daemon.paused = False
    assert main(["generate", "x", "-o", str(tmp_path)], connect=daemon.client) == 0
    assert "paused" not in capsys.readouterr().err


class TerminatedMidJob(CliDaemon):
    """SIGTERM arrives while the job runs (`timeout 60 impasto generate ...`)."""

    def _events(self) -> Iterator[bytes]:
        yield sse(1, "started")
        os.kill(os.getpid(), signal.SIGTERM)
        yield sse(2, "progress", step=1, total=2, progress=0.5)


def test_sigterm_cancels_the_running_job_and_exits_143(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """It killed the command and left the job to run for no one."""

    def escaped(_signum: int, _frame: object) -> None:  # not the test run's end, if it breaks
        raise RuntimeError("SIGTERM was not handled by generate")

    outside = signal.signal(signal.SIGTERM, escaped)
    try:
        daemon = TerminatedMidJob()
        assert main(["generate", "x", "-o", str(tmp_path / "new")], connect=daemon.client) == 143
        assert signal.getsignal(signal.SIGTERM) is escaped  # restored once done
    finally:
        signal.signal(signal.SIGTERM, outside)
    assert f"Cancelling job {JOB}" in capsys.readouterr().err
    assert daemon.requests[-1].url.path == f"/api/v1/generate/{JOB}/cancel"
    assert not (tmp_path / "new").exists()
