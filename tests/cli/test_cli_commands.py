"""`config`, `serve`, `worker`, `status`, `queue`, `cancel`, `version`, `tray`, exit codes."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path
from typing import NoReturn

import httpx
import pytest
from cli_fakes import JOB, CliDaemon, status

import impasto.worker.main
from impasto import __version__
from impasto.cli.main import build_parser, main
from impasto.client import Client
from impasto.settings import Settings, field_docs, secret_fields
from impasto.settings_load import LoadedSettings


def test_config_lists_every_setting_with_source_and_doc(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    (tmp_path / "config.toml").write_text('default_model = "from-file"\n')
    monkeypatch.setenv("IMPASTO_PORT", "9123")
    assert main(["config"]) == 0
    out = capsys.readouterr().out
    for name, doc in field_docs().items():
        assert f"    {doc}\n" in out
        assert f"\n{name} = " in out
    assert "port = 9123  [environment]" in out
    assert f'default_model = "from-file"  [config file {tmp_path / "config.toml"}]' in out
    assert "max_queue = 1000  [default]" in out


def test_config_json_masks_the_tokens_unless_asked(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # hf_token was printed in clear: the secrets are marked on the settings, not listed here.
    assert secret_fields() == {"token", "hf_token"}
    monkeypatch.setenv("IMPASTO_TOKEN", "hunter2")
    monkeypatch.setenv("IMPASTO_HF_TOKEN", "hf_secret")
    assert main(["config", "--json"]) == 0
    settings = json.loads(capsys.readouterr().out)["settings"]
    assert set(settings) == set(field_docs())
    assert settings["token"] == {
        "value": "********",
        "source": "environment",
        "doc": field_docs()["token"],
    }
    assert settings["hf_token"]["value"] == "********"
    assert main(["config"]) == 0
    assert "hunter2" not in capsys.readouterr().out
    for flag in ("--show-secrets", "--show-token"):
        assert main(["config", "--json", flag]) == 0
        shown = json.loads(capsys.readouterr().out)["settings"]
        assert (shown["token"]["value"], shown["hf_token"]["value"]) == ("hunter2", "hf_secret")


def test_config_says_which_folder_an_empty_path_setting_means(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """An empty one is the platform default: the folder it means is printed, so the README's
    "copy them into your models folder (`models_dir` in `impasto config`)" can be followed."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "share"))
    monkeypatch.setenv("IMPASTO_OUTPUT_DIR", str(tmp_path / "pictures"))
    assert main(["config"]) == 0
    lines = capsys.readouterr().out.splitlines()
    models = tmp_path / "share" / "impasto" / "models"
    at = lines.index('models_dir = ""  [default]')
    assert lines[at + 2] == f"    In use: {models}"
    at = lines.index('socket_path = ""  [default]')
    assert lines[at + 2] == f"    In use: {tmp_path / 'runtime' / 'impasto.sock'}"
    at = lines.index(f'output_dir = "{tmp_path / "pictures"}"  [environment]')
    assert lines[at + 2].startswith("models_dir = ")  # set: not repeated
    assert main(["config", "--json"]) == 0
    settings = json.loads(capsys.readouterr().out)["settings"]
    assert settings["models_dir"]["in_use"] == str(models)
    assert settings["output_dir"]["in_use"] == str(tmp_path / "pictures")
    assert "in_use" not in settings["port"]


def test_config_with_a_bad_value_is_a_usage_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("IMPASTO_PORT", "eighty")
    assert main(["config"]) == 2
    assert "'port' from environment" in capsys.readouterr().err


def test_serve_passes_flags_as_command_line_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    received: list[LoadedSettings] = []
    fake = types.ModuleType("impasto.server")
    fake.serve = lambda loaded: received.append(loaded) or 0  # type: ignore[attr-defined]

    def end_process(code: int) -> NoReturn:  # the daemon's process ends here, not in main
        raise SystemExit(code)

    monkeypatch.setattr("impasto.process_end.end_process", end_process)
    monkeypatch.setitem(sys.modules, "impasto.server", fake)
    argv = [
        "serve",
        "--port",
        "9001",
        "--no-socket",
        "--data-dir",
        "/tmp/d",
        "--keep-alive",
        "2.5",
        "--allowed-hosts",
        "a.local, b.local",
        "--token",
        "t",
    ]
    with pytest.raises(SystemExit) as ended:
        main(argv)
    assert ended.value.code == 0
    (loaded,) = received
    settings = loaded.settings
    assert (settings.port, settings.socket, settings.data_dir) == (9001, False, "/tmp/d")
    assert (settings.keep_alive, settings.allowed_hosts) == (2.5, ["a.local", "b.local"])
    assert loaded.sources["port"] == "command line"
    assert loaded.sources["host"] == "default"
    assert settings.host == Settings().host


def test_serve_has_a_flag_for_every_setting(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--help"]) == 0
    help_text = capsys.readouterr().out
    for name in field_docs():
        assert "--" + name.replace("_", "-") in help_text


def test_serve_rejects_a_bad_value_without_starting(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("IMPASTO_PORT", "x")
    assert main(["serve"]) == 2
    assert "port" in capsys.readouterr().err


def test_worker_gets_the_rest_of_the_arguments(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[list[str]] = []
    monkeypatch.setattr(impasto.worker.main, "run_worker", lambda argv: seen.append(argv) or 7)
    assert main(["worker", "--device-id", "1", "--provider", "cpu"]) == 7
    assert seen == [["--device-id", "1", "--provider", "cpu"]]


@pytest.mark.parametrize(
    "argv",
    [
        ["--url", "http://127.0.0.1:9", "--token", "t", "status"],
        ["status", "--url", "http://127.0.0.1:9", "--token", "t"],
        ["--url", "http://elsewhere:1", "status", "--url", "http://127.0.0.1:9", "--token", "t"],
    ],
)
def test_connection_options_go_before_or_after_the_command(argv: list[str]) -> None:
    """As with git's or docker's global options; the command's own copy wins."""
    args = build_parser().parse_args(argv)
    assert (args.url, args.token, args.unix_socket) == ("http://127.0.0.1:9", "t", None)


def test_without_connection_options_the_discovery_file_is_read() -> None:
    args = build_parser().parse_args(["queue"])
    assert (args.url, args.token, args.unix_socket) == (None, None, None)


def test_no_daemon_exits_3_and_says_how_to_start_it(capsys: pytest.CaptureFixture[str]) -> None:
    # The autouse fixture points the runtime dir at an empty folder: no discovery file.
    for argv in (["status"], ["queue"], ["cancel", JOB], ["generate", "x"]):
        assert main(argv) == 3
        assert "Impasto is not running: start it with `impasto serve`" in capsys.readouterr().err


def test_status_summarises_the_daemon(capsys: pytest.CaptureFixture[str]) -> None:
    daemon = CliDaemon()
    daemon.overrides[("GET", "/api/v1/health")] = httpx.Response(
        200, json={"status": "ok", "version": "0.1.0"}
    )
    daemon.overrides[("GET", "/api/v1/system")] = httpx.Response(
        200,
        json={
            "version": "0.1.0",
            "provider": {
                "name": "cpu",
                "providers": ["CPUExecutionProvider"],
                "rejected": [
                    {"name": "cuda", "reason": "no NVIDIA driver"},
                    {"name": "tensorrt", "reason": "no NVIDIA driver"},
                ],
            },
            "gpus": [
                {
                    "index": 0,
                    "name": "Fake GPU",
                    "memory_total": 8 * 1024**3,
                    "memory_used": 2 * 1024**3,
                }
            ],
            "memory": {"total": 16 * 1024**3, "available": 4 * 1024**3},
            "queue": {"queued": 3, "processing": 1, "paused": True},
            "loaded_models": [{"model": "sd-tiny", "expires_at": "2025-01-01T00:05:00Z"}],
            "workers": [{"id": "worker-0", "pid": 4242, "state": "busy", "job_id": JOB}],
        },
    )
    assert main(["status"], connect=daemon.client) == 0
    out = capsys.readouterr().out
    assert "Impasto 0.1.0 is running at http://localhost" in out
    assert "not used (no NVIDIA driver): cuda, tensorrt" in out
    assert "GPU 0: Fake GPU, 2.0 GiB of 8.0 GiB used" in out
    assert "Memory: 4.0 GiB free of 16.0 GiB" in out
    assert "Queue: 1 processing, 3 queued, paused" in out
    assert "Loaded models: sd-tiny" in out
    assert f"Worker-0 (pid 4242): busy on job {JOB}" in out


def test_queue_prints_a_table_in_run_order(capsys: pytest.CaptureFixture[str]) -> None:
    daemon = CliDaemon()
    running = status("processing", progress=0.5)
    waiting = status("queued", id="job-2", position=0, priority=5)
    waiting["request"]["prompt"] = "p" * 60
    daemon.overrides[("GET", "/api/v1/queue")] = httpx.Response(
        200, json={"paused": False, "items": [running, waiting]}
    )
    assert main(["queue"], connect=daemon.client) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["ID", "STATUS", "PRIORITY", "MODEL", "SIZE", "PROMPT"]
    assert lines[1].split() == [
        JOB,
        "processing",
        "50%",
        "0",
        "sd-tiny",
        "64x64",
        "a",
        "lighthouse",
    ]
    assert lines[2].split()[:4] == ["job-2", "queued", "#0", "5"]
    assert lines[2].endswith("p" * 39 + "…")


def test_a_queue_longer_than_a_page_says_how_many_more(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """GET /queue answers its first page; the table is not all of the queue."""
    daemon = CliDaemon()
    items = [status("queued", id=f"job-{i}", position=i) for i in range(100)]
    daemon.overrides[("GET", "/api/v1/queue")] = httpx.Response(
        200, json={"paused": False, "items": items, "total": 130, "next_offset": 100}
    )
    assert main(["queue"], connect=daemon.client) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 102 and lines[-1] == "... and 30 more queued after these."


def test_empty_paused_queue_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    daemon = CliDaemon()
    daemon.overrides[("GET", "/api/v1/queue")] = httpx.Response(
        200, json={"paused": True, "items": []}
    )
    assert main(["queue"], connect=daemon.client) == 0
    out = capsys.readouterr().out
    assert "paused" in out and "No jobs are running or queued." in out


def test_cancel_and_cancel_of_a_finished_job(capsys: pytest.CaptureFixture[str]) -> None:
    daemon = CliDaemon()
    assert main(["cancel", JOB], connect=daemon.client) == 0
    assert f"Cancelled {JOB}." in capsys.readouterr().out
    daemon.overrides[("POST", f"/api/v1/generate/{JOB}/cancel")] = httpx.Response(
        409, json={"status_code": 409, "detail": "The job already finished (completed)."}
    )
    assert main(["cancel", JOB], connect=daemon.client) == 1
    assert "already finished" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["version"], ["--version"]])
def test_version(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 0
    assert capsys.readouterr().out == f"impasto {__version__}\n"


def test_tray_missing_says_how_to_install(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "impasto_tray", None)  # makes the import fail
    assert main(["tray"]) == 1
    assert "impasto[tray]" in capsys.readouterr().err


def test_tray_runs_the_tray_main(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = types.ModuleType("impasto_tray")
    fake.main = lambda: 0  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "impasto_tray", fake)
    assert main(["tray"]) == 0


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert main(["generate"]) == 2
    assert main(["generate", "x", "--steps", "many"]) == 2
    assert "must be an integer between 1 and 150" in capsys.readouterr().err


def test_unauthorized_hints_at_the_token(capsys: pytest.CaptureFixture[str]) -> None:
    daemon = CliDaemon()
    daemon.overrides[("GET", "/api/v1/queue")] = httpx.Response(
        401, json={"status_code": 401, "detail": "Missing or wrong token."}
    )
    assert main(["queue"], connect=daemon.client) == 1
    assert "--token or IMPASTO_TOKEN" in capsys.readouterr().err


def test_impasto_url_and_url_say_where_the_daemon_is(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Nothing listens on port 9: the message names the address the command was sent to.
    monkeypatch.setenv("IMPASTO_URL", "http://127.0.0.1:9")
    assert main(["status"]) == 3
    assert "nothing answers at http://127.0.0.1:9" in capsys.readouterr().err
    # HOST:PORT is http, as with OLLAMA_HOST; the option beats the variable.
    assert main(["status", "--url", "127.0.0.1:10"]) == 3
    assert "nothing answers at http://127.0.0.1:10" in capsys.readouterr().err


def test_an_address_that_is_not_http_is_a_usage_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("IMPASTO_URL", "ftp://127.0.0.1:9")
    assert main(["queue"]) == 2
    assert "IMPASTO_URL 'ftp://127.0.0.1:9' is not the daemon's address" in capsys.readouterr().err


def test_pull_shows_no_byte_count_for_a_stage_that_counts_none(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A local folder's stages report no bytes: "optimize", not "optimize  0 B"."""
    stages = iter(
        [
            {"stage": "copy", "bytes_done": 4_000_000, "bytes_total": 8_000_000},
            {"stage": "optimize"},
            {"stage": "completed", "status": "completed"},
        ]
    )
    task = {"id": "task-1", "model_id": "mine", "source": "/models/mine", "status": "running"}

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/v1/models/install":
            return httpx.Response(202, json=task)
        return httpx.Response(200, json={**task, **next(stages)})

    def connect(_args: object) -> Client:
        return Client(transport=httpx.MockTransport(handle))

    monkeypatch.setattr("impasto.cli.models.POLL", 0)
    assert main(["pull", "/models/mine"], connect=connect) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1:] == [
        "copy      [###############...............] 4.0 MB / 8.0 MB",
        "optimize",
        "completed",
        "installed mine",
    ]


def test_another_program_on_the_port_is_named_not_printed(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`--url` at a web server that is not Impasto: one line saying so, not its HTML page."""
    page = "<!DOCTYPE HTML>\n<html><body><h1>Error response</h1></body></html>\n" * 5

    def handle(request: httpx.Request) -> httpx.Response:
        return httpx.Response(404, text=page, headers={"Content-Type": "text/html"})

    def connect(_args: object) -> Client:
        return Client(base_url="http://127.0.0.1:8222", transport=httpx.MockTransport(handle))

    assert main(["status"], connect=connect) == 1
    err = capsys.readouterr().err
    assert "<html>" not in err and len(err.splitlines()) == 1
    assert "http://127.0.0.1:8222 answered 404 Not Found with text/html" in err
    assert "IMPASTO_URL" in err


def test_a_refused_search_names_the_option(capsys: pytest.CaptureFixture[str]) -> None:
    daemon = CliDaemon()
    rule = "must be text of at most 1000 characters"
    daemon.overrides[("GET", "/api/v1/history")] = httpx.Response(
        422,
        json={
            "status_code": 422,
            "detail": f"q: {rule}",
            "errors": [{"field": "q", "message": rule}],
        },
    )
    assert main(["history", "--search", "x" * 1001], connect=daemon.client) == 1
    assert capsys.readouterr().err == f"error: q (--search): {rule} (HTTP 422)\n"
