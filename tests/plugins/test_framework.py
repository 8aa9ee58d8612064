"""Plugins through a real daemon and worker: discovery, isolation, enable/disable, every hook."""

from __future__ import annotations

import io
import json
import time

import httpx
import pytest
from PIL import Image

from impasto.cli.main import main as cli
from tests.harness import TINY, Daemon, wait_status


def plugins_by_name(daemon: Daemon) -> dict[str, dict]:
    with daemon.client() as client:
        return {p["name"]: p for p in client.get("/api/v1/plugins").json()}


def run_job(daemon: Daemon, **request: object) -> dict:
    with daemon.client() as client:
        response = client.post("/api/v1/generate", json={**TINY, "seed": 3, **request})
        assert response.status_code == 202, response.text
        return wait_status(client, response.json()["id"], {"completed", "failed", "cancelled"})


def set_enabled(daemon: Daemon, name: str, enabled: bool) -> dict:
    with daemon.client() as client:
        response = client.post(f"/api/v1/plugins/{name}/{'enable' if enabled else 'disable'}")
        assert response.status_code == 200, response.text
        return response.json()


def test_lists_plugins_with_their_load_errors_and_still_serves(plugin_daemon: Daemon) -> None:
    found = plugins_by_name(plugin_daemon)
    assert "frobnicate" in found["broken"]["error"]
    assert "unknown hook(s) postprocess_results" in found["typo"]["error"]
    exploding = found["exploding"]
    assert exploding["error"] is None and exploding["version"] == "1.2.3"
    assert exploding["hooks"] == ["postprocess_result", "preprocess_request"]
    assert found["png_metadata"]["builtin"] and found["png_metadata"]["enabled"]
    assert found["prompt_filter"]["builtin"] and not found["prompt_filter"]["enabled"]
    for name in ("upscale", "styles", "watermark"):  # the example distributions' entry points
        assert found[name]["source"].startswith("distribution impasto-"), found[name]
    assert run_job(plugin_daemon, prompt="still serving")["status"] == "completed"


def test_a_raising_postprocessor_fails_only_its_job(plugin_daemon: Daemon) -> None:
    pid = plugin_daemon.wait_worker_ready()["pid"]
    failed = run_job(plugin_daemon, prompt="please explode")
    assert failed["status"] == "failed"
    assert "'exploding'" in failed["error"] and "boom on purpose" in failed["error"]
    assert "postprocess_result" in failed["error"]
    assert run_job(plugin_daemon, prompt="calm")["status"] == "completed"
    assert plugin_daemon.wait_worker_ready()["pid"] == pid


def test_a_raising_preprocessor_is_a_422_naming_it(plugin_daemon: Daemon) -> None:
    with plugin_daemon.client() as client:
        response = client.post("/api/v1/generate", json={**TINY, "prompt": "crash before queue"})
    assert response.status_code == 422
    assert "'exploding'" in response.json()["detail"]
    assert response.json()["errors"][0]["field"] == "plugins"


@pytest.mark.parametrize(
    ("prompt", "raised"),
    [("exit before queue", "SystemExit: 3"), ("interrupt before queue", "KeyboardInterrupt")],
)
def test_a_preprocessor_that_exits_or_interrupts_is_a_422_naming_it_and_logged(
    plugin_daemon: Daemon, prompt: str, raised: str
) -> None:
    """argparse inside a plugin raises SystemExit; neither stops the daemon or is a 500."""
    with plugin_daemon.client() as client:
        response = client.post("/api/v1/generate", json={**TINY, "prompt": prompt})
    assert response.status_code == 422, response.text
    error = response.json()["errors"][0]
    assert error["field"] == "plugins"
    assert error["message"].startswith(
        f"plugin 'exploding' failed in preprocess_request: {raised}"
    ), error
    log = (plugin_daemon.log_dir / "daemon.log").read_text()
    logged = log[log.rindex("plugin exploding failed in preprocess_request") :]
    assert "Traceback (most recent call last)" in logged and raised.split(":")[0] in logged
    assert run_job(plugin_daemon, prompt="still serving")["status"] == "completed"


@pytest.mark.parametrize(
    ("prompt", "error"),
    [
        ("exit after", "plugin 'exploding' failed in postprocess_result: SystemExit: 3"),
        ("interrupt after", "plugin 'exploding' failed in postprocess_result: KeyboardInterrupt"),
        (
            "wrong type",
            "plugin 'exploding' failed in postprocess_result: TypeError: returned str "
            "'not an image', expected a PIL image (PIL.Image.Image) or None",
        ),
    ],
)
def test_a_postprocessor_that_exits_or_returns_nonsense_fails_its_job_naming_it(
    plugin_daemon: Daemon, prompt: str, error: str
) -> None:
    """The plugin that did it is named, not the next one (png_metadata) that chokes on it."""
    pid = plugin_daemon.wait_worker_ready()["pid"]
    failed = run_job(plugin_daemon, prompt=prompt)
    assert failed["status"] == "failed"
    assert failed["error"].startswith(error), failed["error"]
    assert plugin_daemon.wait_worker_ready()["pid"] == pid  # the worker keeps serving
    log = (plugin_daemon.log_dir / "worker-0.log").read_text()
    assert "Traceback" in log[log.rindex("plugin exploding failed in postprocess_result") :]


def test_a_preprocessor_returning_a_field_of_the_wrong_type_is_its_error(
    plugin_daemon: Daemon,
) -> None:
    """The returned request is checked as strictly as a client's: 5 is no prompt, nor "5"."""
    with plugin_daemon.client() as client:
        response = client.post("/api/v1/generate", json={**TINY, "prompt": "numbered prompt"})
        assert client.get("/api/v1/queue").json()["items"] == []
    assert response.status_code == 422, response.text
    error = response.json()["errors"][0]
    assert error["field"] == "prompt"
    assert error["message"].startswith(
        "plugin 'exploding' returned a request the request schema refuses (prompt: must be "
    ), error
    assert "; it returned int 5); disable it with" in error["message"], error


def test_enabling_a_plugin_that_failed_to_load_says_why(
    plugin_daemon: Daemon, capsys: pytest.CaptureFixture[str]
) -> None:
    with plugin_daemon.client() as client:
        response = client.post("/api/v1/plugins/broken/enable")
    assert response.status_code == 409, response.text
    assert response.json()["detail"].startswith(
        "plugin 'broken' failed to load (ImportError: this plugin needs the frobnicate package"
    )
    assert cli(["plugins", "enable", "broken", "--url", plugin_daemon.url]) == 1
    out, err = capsys.readouterr()
    assert "plugin 'broken' failed to load" in err and "restart the daemon" in err
    assert "enabled" not in out


def test_a_job_cancelled_during_its_postprocessors_ends_cancelled_without_images(
    plugin_daemon: Daemon, capsys: pytest.CaptureFixture[str]
) -> None:
    pid = plugin_daemon.wait_worker_ready()["pid"]
    with plugin_daemon.client() as client:
        response = client.post("/api/v1/generate", json={**TINY, "seed": 3, "prompt": "slow"})
        job_id = response.json()["id"]
        marker = plugin_daemon.data_dir / f"slow-{job_id}"
        deadline = time.monotonic() + 60
        while not marker.exists():  # the slow plugin is post-processing the image
            assert time.monotonic() < deadline, "the job never reached its postprocessor"
            time.sleep(0.05)
        assert cli(["cancel", job_id, "--url", plugin_daemon.url]) == 0
        assert "ends cancelled" in capsys.readouterr().out
        done = wait_status(client, job_id, {"completed", "failed", "cancelled"})
    assert done["status"] == "cancelled", done
    assert done["results"] == []
    assert not list(plugin_daemon.root.rglob(f"{job_id}-*.png"))  # no image kept
    assert plugin_daemon.wait_worker_ready()["pid"] == pid  # it stopped without a restart


def test_disabling_a_plugin_applies_to_the_next_job(plugin_daemon: Daemon) -> None:
    set_enabled(plugin_daemon, "exploding", False)
    try:
        assert run_job(plugin_daemon, prompt="explode, but disabled")["status"] == "completed"
        state = json.loads((plugin_daemon.data_dir / "plugins.json").read_text())
        assert state["enabled"]["exploding"] is False
    finally:
        set_enabled(plugin_daemon, "exploding", True)
    assert run_job(plugin_daemon, prompt="explode again")["status"] == "failed"


def test_options_for_a_plugin_that_will_not_run_are_refused(plugin_daemon: Daemon) -> None:
    """Not a job that runs without what it asked for: no such plugin, a disabled one, or one
    that failed to load is a 422 naming ``plugins.<name>`` and what to do."""
    refused = {
        "nope": "no plugin named 'nope'; installed: ",
        "watermark": "plugin 'watermark' is disabled, so these options would do nothing; "
        "enable it with `impasto plugins enable watermark`",
        "broken": "plugin 'broken' failed to load (",
    }
    with plugin_daemon.client() as client:
        for name, message in refused.items():
            body = {**TINY, "prompt": "a fox", "plugins": {name: {"text": "x"}}}
            response = client.post("/api/v1/generate", json=body)
            assert response.status_code == 422, response.text
            error = response.json()["errors"][0]
            assert error["field"] == f"plugins.{name}", error
            assert message in error["message"], error
        assert client.get("/api/v1/queue").json()["items"] == []
    set_enabled(plugin_daemon, "watermark", True)
    try:
        done = run_job(plugin_daemon, prompt="marked", plugins={"watermark": {"text": "x"}})
        assert done["status"] == "completed", done
    finally:
        set_enabled(plugin_daemon, "watermark", False)


def test_prompt_filter_is_off_by_default_and_rejects_when_enabled(plugin_daemon: Daemon) -> None:
    assert run_job(plugin_daemon, prompt="a forbidden fruit")["status"] == "completed"
    assert cli(["plugins", "enable", "prompt_filter", "--url", plugin_daemon.url]) == 0
    try:
        with plugin_daemon.client() as client:
            word = client.post("/api/v1/generate", json={**TINY, "prompt": "a Forbidden fruit"})
            regex = client.post("/api/v1/generate", json={**TINY, "prompt": "castle  of doom"})
            fine = client.post("/api/v1/generate", json={**TINY, "prompt": "forbiddenness"})
        assert word.status_code == 422 and regex.status_code == 422
        assert "'prompt_filter'" in word.json()["detail"] and "forbidden" in word.json()["detail"]
        assert word.json()["errors"][0]["field"] == "prompt"
        assert "castle" in regex.json()["detail"]
        assert fine.status_code == 202  # whole words only
    finally:
        assert cli(["plugins", "disable", "prompt_filter", "--url", plugin_daemon.url]) == 0


def test_cli_lists_plugins_and_reports_unknown_names(
    plugin_daemon: Daemon, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli(["plugins", "list", "--url", plugin_daemon.url]) == 0
    out = capsys.readouterr().out
    assert "png_metadata" in out and "(built-in): enabled" in out
    assert "broken 0: failed to load: ImportError" in out
    assert cli(["plugins", "enable", "nope", "--url", plugin_daemon.url]) == 1
    assert "no plugin named 'nope'" in capsys.readouterr().err


def test_png_metadata_is_a_plugin_that_can_be_disabled(plugin_daemon: Daemon) -> None:
    from impasto.formats.png import read_png_metadata

    set_enabled(plugin_daemon, "png_metadata", False)
    try:
        bare = run_job(plugin_daemon, prompt="no metadata please")
    finally:
        set_enabled(plugin_daemon, "png_metadata", True)
    with plugin_daemon.client() as client:
        png = client.get(bare["results"][0]["url"]).content
    assert read_png_metadata(png) == {"parameters": None, "impasto": None}


def test_plugin_sampler_runs_and_follows_the_enabled_flag(plugin_daemon: Daemon) -> None:
    with plugin_daemon.client() as client:
        samplers = {s["id"]: s for s in client.get("/api/v1/samplers").json()}
    assert samplers["plugin_euler"]["name"] == "Plugin Euler"
    assert samplers["plugin_euler"]["eta"] is None  # it adds no noise per step
    # A subclass of Euler whose own constructor has no churn does not take it.
    assert samplers["euler"]["churn"] and not samplers["plugin_euler"]["churn"]
    with plugin_daemon.client() as client:
        body = {**TINY, "prompt": "x", "sampler": "plugin_euler", "s_churn": 1.0}
        refused = client.post("/api/v1/generate", json=body)
    assert refused.status_code == 422 and refused.json()["errors"][0]["field"] == "s_churn"
    # A 4-tuple's settings reach the registry: the recommended schedule is served.
    assert samplers["plugin_euler"]["recommended_schedule"] == "default"
    assert samplers["plugin_euler_k"]["recommended_schedule"] == "karras"
    assert samplers["plugin_euler"]["a1111_schedule"] == "default"
    assert samplers["plugin_euler_k"]["a1111_schedule"] == "uniform"
    done = run_job(plugin_daemon, prompt="sampled", sampler="plugin_euler")
    assert done["status"] == "completed"
    reference = run_job(plugin_daemon, prompt="sampled", sampler="euler")
    with plugin_daemon.client() as client:
        ours, theirs = (client.get(j["results"][0]["url"]).content for j in (done, reference))
    assert Image.open(io.BytesIO(ours)).tobytes() == Image.open(io.BytesIO(theirs)).tobytes()
    set_enabled(plugin_daemon, "extras", False)
    try:
        with plugin_daemon.client() as client:
            response = client.post(
                "/api/v1/generate", json={**TINY, "prompt": "x", "sampler": "plugin_euler"}
            )
        assert response.status_code == 422
        assert response.json()["errors"][0]["field"] == "sampler"
        assert "impasto plugins enable extras" in response.json()["detail"]
    finally:
        set_enabled(plugin_daemon, "extras", True)


def test_model_loader_claims_its_folders(plugin_daemon: Daemon) -> None:
    done = run_job(plugin_daemon, prompt="painted", model="claimed-tiny")
    assert done["status"] == "completed", done["error"]
    with plugin_daemon.client() as client:
        png = Image.open(io.BytesIO(client.get(done["results"][0]["url"]).content))
    assert png.convert("RGB").getcolors() == [(64 * 64, (12, 200, 34))]


def test_plugin_routes_are_mounted_and_follow_the_enabled_flag(plugin_daemon: Daemon) -> None:
    with plugin_daemon.client() as client:
        assert client.get("/api/v1/plugins/extras/ping").json() == {"pong": "extras"}
        set_enabled(plugin_daemon, "extras", False)
        try:
            gone = client.get("/api/v1/plugins/extras/ping")
        finally:
            set_enabled(plugin_daemon, "extras", True)
    assert gone.status_code == 404 and "disabled" in gone.json()["detail"]


def test_a_plugin_route_that_exits_is_a_500_naming_it_and_logged(plugin_daemon: Daemon) -> None:
    with plugin_daemon.client() as client:
        response = client.get("/api/v1/plugins/extras/exit")
        assert client.get("/api/v1/plugins/extras/ping").status_code == 200  # still serving
    assert response.status_code == 500
    assert response.json()["detail"].startswith(
        "plugin 'extras' failed in its route /api/v1/plugins/extras/exit: SystemExit: 3"
    )
    log = (plugin_daemon.log_dir / "daemon.log").read_text()
    logged = log[log.rindex("plugin extras failed in its route") :]
    assert "Traceback (most recent call last)" in logged and "SystemExit: 3" in logged


def test_unknown_plugin_is_404(plugin_daemon: Daemon) -> None:
    with plugin_daemon.client() as client:
        response = client.post("/api/v1/plugins/nope/enable")
    assert response.status_code == 404 and "broken" in response.json()["detail"]


def test_a_hanging_preprocessor_can_be_disabled_and_a_burst_of_calls_is_not_refused(
    plugin_daemon: Daemon,
) -> None:
    """Hung preprocessors held the daemon's shared threads, so `impasto plugins disable` (and
    everything else run in them) waited for the plugin; now each plugin's calls run on threads
    of their own, and calls that merely run at once (40 here) are all let through (only calls
    that timed out count against a plugin)."""
    from concurrent.futures import ThreadPoolExecutor

    def submit(_: int) -> dict:
        with httpx.Client(base_url=plugin_daemon.url, timeout=120) as client:
            body = {**TINY, "prompt": "hang before queue"}
            return client.post("/api/v1/generate", json=body).json()

    release = plugin_daemon.data_dir / "release-slow"
    with ThreadPoolExecutor(40) as pool:
        try:
            answers = pool.map(submit, range(40))
            time.sleep(2)
            with httpx.Client(base_url=plugin_daemon.url, timeout=10) as client:
                started = time.monotonic()
                disabled = client.post("/api/v1/plugins/slow/disable")
                assert disabled.status_code == 200 and not disabled.json()["enabled"]
                assert client.get("/api/v1/health").status_code == 200
                assert time.monotonic() - started < 5
                assert client.post("/api/v1/plugins/slow/enable").json()["enabled"]
        finally:
            release.touch()
        details = [answer["detail"] for answer in answers]
    release.unlink()
    assert details == ["prompt: rejected by plugin 'slow': released"] * 40, details


def test_plugins_list_counts_each_plugins_failures_in_the_api_and_the_worker(
    plugin_daemon: Daemon, capsys: pytest.CaptureFixture[str]
) -> None:
    """A plugin that loads but breaks requests or jobs shows so in GET /plugins and `impasto
    plugins list`, not only in the failed requests' and jobs' own errors."""
    before = plugins_by_name(plugin_daemon)["exploding"]["failures"]
    assert run_job(plugin_daemon, prompt="please explode")["status"] == "failed"
    after_job = plugins_by_name(plugin_daemon)["exploding"]
    assert after_job["failures"] == before + 1
    assert after_job["last_failure"].startswith(
        "plugin 'exploding' failed in postprocess_result: RuntimeError: boom on purpose"
    )
    with plugin_daemon.client() as client:
        body = {**TINY, "prompt": "crash before queue"}
        assert client.post("/api/v1/generate", json=body).status_code == 422
    after_request = plugins_by_name(plugin_daemon)["exploding"]
    assert after_request["failures"] == before + 2
    assert "failed in preprocess_request: KeyError" in after_request["last_failure"]
    assert plugins_by_name(plugin_daemon)["png_metadata"]["failures"] == 0
    assert cli(["plugins", "list", "--url", plugin_daemon.url]) == 0
    out = capsys.readouterr().out
    assert (
        f"  failed {before + 2} times, last: plugin 'exploding' failed in preprocess_request" in out
    )
