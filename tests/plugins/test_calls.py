"""The plugin host without a daemon: whatever a hook raises or returns wrong names its plugin."""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from impasto.plugins import (
    PluginFailed,
    PluginRejected,
    PluginUnavailableError,
    PostprocessResult,
)
from impasto.plugins.discovery import build_plugin_manager
from impasto.plugins.manager import PluginHost

# A plugin whose every hook raises what the test puts in RAISE (nothing when None).
RAISING = """
from impasto.plugins import hookimpl

RAISE = None


def _raise():
    if RAISE is not None:
        raise RAISE


@hookimpl
def startup(app_context):
    _raise()


@hookimpl
def shutdown():
    _raise()


@hookimpl
def preprocess_request(request):
    _raise()


@hookimpl
def postprocess_result(result, image):
    _raise()


@hookimpl
def register_samplers():
    _raise()


@hookimpl
def register_routes():
    _raise()


@hookimpl
def model_loader(model_dir):
    _raise()


@hookimpl
def prompt_styles():
    _raise()
"""

# A plugin whose every hook returns what the test puts in RETURN.
RETURNING = RAISING.replace("RAISE = None", "RETURN = None").replace(
    "\n    _raise()", "\n    return RETURN"
)

RAISED = [
    SystemExit(3),  # what argparse inside a plugin raises
    KeyboardInterrupt(),
    GeneratorExit(),
    asyncio.CancelledError(),
    RuntimeError("boom"),
]


def write_plugin(data_dir: Path, name: str, source: str) -> None:
    folder = data_dir / "plugins"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.py").write_text(source)


def host_with(tmp_path: Path, name: str, source: str) -> PluginHost:
    write_plugin(tmp_path, name, source)
    host = build_plugin_manager(data_dir=tmp_path, entry_points=False)
    assert host.records[name].error is None, host.records[name].error
    return host


def a_result() -> PostprocessResult:
    return PostprocessResult(job_id="j", index=0, seed=1, model="m", request={"prompt": "p"})


def in_thread(call: Callable[[], Any]) -> Any:
    """``call()`` in another thread, as the API runs hooks (asyncio.to_thread): its result, or
    what it raised, raised here."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = call()
        except BaseException as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    error = outcome.get("error")
    if error is not None and not isinstance(error, Exception):  # here it would stop pytest
        raise AssertionError(f"{type(error).__name__} escaped the plugin host") from error
    if error is not None:
        raise error
    return outcome.get("value")


def hook_calls(host: PluginHost) -> dict[str, Callable[[], Any]]:
    """The host's call of each hook that raises a plugin's error to its caller."""
    active = host.job_plugins()
    image = Image.new("RGB", (8, 8))
    return {
        "preprocess_request": lambda: host.preprocess_request({"prompt": "p"}),
        "postprocess_result": lambda: host.postprocess(a_result(), image, active),
        "model_loader": lambda: host.load_model("folder", active),
    }


@pytest.fixture
def raising(tmp_path: Path) -> Iterator[tuple[PluginHost, Any]]:
    host = host_with(tmp_path, "raiser", RAISING)
    module = host.records["raiser"].module
    yield host, module


@pytest.mark.parametrize("exc", RAISED, ids=lambda e: type(e).__name__)
@pytest.mark.parametrize("hook", ["preprocess_request", "postprocess_result", "model_loader"])
def test_anything_a_hook_raises_is_its_plugins_error_and_logged(
    raising: tuple[PluginHost, Any],
    hook: str,
    exc: BaseException,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """SystemExit, KeyboardInterrupt (in the API's threads), GeneratorExit and the rest."""
    host, module = raising
    module.RAISE = exc
    with caplog.at_level(logging.ERROR, "impasto.plugins"), pytest.raises(PluginFailed) as caught:
        in_thread(hook_calls(host)[hook])
    assert caught.value.plugin == "raiser"
    assert f"plugin 'raiser' failed in {hook}: {type(exc).__name__}" in caught.value.message
    [record] = [r for r in caplog.records if r.name == "impasto.plugins"]
    assert record.getMessage() == f"plugin raiser failed in {hook}"
    assert record.exc_info is not None and record.exc_info[1] is exc  # with its traceback


@pytest.mark.parametrize("exc", RAISED, ids=lambda e: type(e).__name__)
def test_hooks_run_at_start_mark_their_plugin_broken(
    raising: tuple[PluginHost, Any], exc: BaseException
) -> None:
    host, module = raising
    module.RAISE = exc
    registered: list[str] = []
    in_thread(lambda: host.register_samplers(lambda *args, **kw: registered.append(args[0])))
    raised = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    assert host.records["raiser"].error == (
        f"register_samplers: plugin 'raiser' failed in register_samplers: "
        f"{raised}; disable it with `impasto plugins disable raiser`"
    )
    for name, call in (
        ("register_routes", host.route_handlers),
        ("startup", lambda: host.startup(None)),
    ):
        host.records["raiser"].error = None
        in_thread(call)
        assert f"failed in {name}: {type(exc).__name__}" in str(host.records["raiser"].error)


@pytest.mark.parametrize("exc", RAISED, ids=lambda e: type(e).__name__)
def test_listing_styles_and_shutting_down_survive_a_raising_plugin(
    raising: tuple[PluginHost, Any], exc: BaseException, caplog: pytest.LogCaptureFixture
) -> None:
    host, module = raising
    module.RAISE = exc
    with caplog.at_level(logging.ERROR, "impasto.plugins"):
        assert in_thread(host.prompt_styles) == {}
        in_thread(host.shutdown)
    logged = [r.getMessage() for r in caplog.records if r.name == "impasto.plugins"]
    assert logged == ["plugin raiser failed in prompt_styles", "plugin raiser failed in shutdown"]


def test_a_ctrl_c_on_the_main_thread_still_stops_the_daemon(
    raising: tuple[PluginHost, Any],
) -> None:
    """Where SIGINT raises KeyboardInterrupt (the daemon's main thread before its loop takes
    SIGINT over), it may be the user's Ctrl+C: it goes on. Where SIGINT is ignored (the
    worker process), it can only be the plugin's."""
    host, module = raising
    module.RAISE = KeyboardInterrupt()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    with pytest.raises(KeyboardInterrupt):
        host.preprocess_request({"prompt": "p"})
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with pytest.raises(PluginFailed, match="KeyboardInterrupt"):
            host.postprocess(a_result(), Image.new("RGB", (8, 8)), host.job_plugins())
    finally:
        signal.signal(signal.SIGINT, previous)

    async def daemon() -> None:
        with pytest.raises(KeyboardInterrupt):  # starting: asyncio.run's handler has SIGINT
            host.startup(None)
        # Serving: the loop turns SIGINT into a stop, so no Ctrl+C raises anything.
        asyncio.get_running_loop().add_signal_handler(signal.SIGINT, lambda: None)
        with pytest.raises(PluginFailed, match="KeyboardInterrupt"):
            host.preprocess_request({"prompt": "p"})

    asyncio.run(daemon())


def test_a_plugin_that_exits_while_it_is_imported_fails_to_load(tmp_path: Path) -> None:
    write_plugin(tmp_path, "argv", "import argparse\nargparse.ArgumentParser().parse_args(['-x'])")
    host = build_plugin_manager(data_dir=tmp_path, entry_points=False)
    assert host.records["argv"].error == "SystemExit: 2"
    assert host.records["png_metadata"].error is None  # the others load


@pytest.fixture
def returning(tmp_path: Path) -> Iterator[tuple[PluginHost, Any]]:
    host = host_with(tmp_path, "returner", RETURNING)
    yield host, host.records["returner"].module


WRONG_RETURNS = {
    "preprocess_request": ("not a request", "expected a dict (the request) or None"),
    "postprocess_result": ("not an image", "expected a PIL image (PIL.Image.Image) or None"),
    "model_loader": (object(), "expected a pipeline (an object with generate() and close())"),
}


@pytest.mark.parametrize("hook", sorted(WRONG_RETURNS))
def test_a_wrong_return_names_the_plugin_that_returned_it(
    returning: tuple[PluginHost, Any], hook: str
) -> None:
    """Not the next plugin, which would choke on it (png_metadata's 'str' has no width)."""
    host, module = returning
    module.RETURN, expected = WRONG_RETURNS[hook]
    with pytest.raises(PluginFailed) as caught:
        hook_calls(host)[hook]()
    assert caught.value.plugin == "returner"
    message = caught.value.message
    assert message.startswith(f"plugin 'returner' failed in {hook}: TypeError: returned ")
    assert expected in message, message


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("samplers", "a list of (sampler id, class, display name[, settings dict]) tuples"),
        ([("my_sampler", "not a class", "Mine")], "an entry (sampler id, class, display name"),
    ],
)
def test_wrong_samplers_are_the_plugins_load_error(
    returning: tuple[PluginHost, Any], value: Any, expected: str
) -> None:
    host, module = returning
    module.RETURN = value
    registered: list[Any] = []
    host.register_samplers(lambda *args, **kw: registered.append(args))
    assert registered == []
    assert expected in str(host.records["returner"].error)


def test_wrong_routes_styles_and_an_async_startup_are_the_plugins_error(
    returning: tuple[PluginHost, Any],
) -> None:
    host, module = returning
    module.RETURN = "a route"
    assert host.route_handlers(lambda value: False) == {}
    assert "a list of Litestar route handlers" in str(host.records["returner"].error)
    host.records["returner"].error = None
    module.RETURN = {"noir": "dark"}
    assert host.prompt_styles() == {}
    module.RETURN = {"noir": {"prompt": "dark {prompt}"}}
    assert host.prompt_styles() == {"noir": {"prompt": "dark {prompt}", "negative_prompt": ""}}

    async def hook() -> None: ...

    module.RETURN = hook()  # what an `async def startup` returns: a coroutine nobody runs
    host.startup(None)
    assert "use def, not async def" in str(host.records["returner"].error)


def test_a_plugin_pipeline_is_checked_and_what_it_raises_is_the_plugins(
    returning: tuple[PluginHost, Any],
) -> None:
    from impasto.engine import GeneratedImage, GenerationCancelled

    host, module = returning

    class Pipeline:
        answer: Any = None

        def generate(self, params: Any, progress: Any = None, cancel: Any = None) -> Any:
            if isinstance(self.answer, BaseException):
                raise self.answer
            return self.answer

        def close(self) -> None:
            raise SystemExit(1)

    module.RETURN = pipeline = Pipeline()
    loaded = host.load_model("folder", host.job_plugins())
    image = GeneratedImage(Image.new("RGB", (8, 8)), 1)
    pipeline.answer = [image]
    assert loaded.generate(None) == [image]
    pipeline.answer = ["not an image"]
    with pytest.raises(PluginFailed, match=r"expected a list of impasto\.engine\.GeneratedImage"):
        loaded.generate(None)
    pipeline.answer = SystemExit(2)
    with pytest.raises(PluginFailed, match=r"'returner' failed in model_loader .* SystemExit: 2"):
        loaded.generate(None)
    pipeline.answer = GenerationCancelled("cancelled")  # the engine's own: it goes through
    with pytest.raises(GenerationCancelled):
        loaded.generate(None)
    loaded.close()  # logged, not raised: the pipeline is dropped either way


TYPED = """
from impasto.plugins import RejectRequest, hookimpl

OPTIONS = list[str] | str | None


@hookimpl
def preprocess_request(request, context):
    if context.options == "whole":
        raise RejectRequest("not that one", field="plugins")
    if context.options == "number":
        return {**request, "prompt": 5}
"""


def test_options_of_another_type_than_declared_are_refused_on_the_plugins_field(
    tmp_path: Path,
) -> None:
    host = host_with(tmp_path, "typed", TYPED)
    with pytest.raises(PluginRejected) as caught:
        host.preprocess_request({"prompt": "p", "plugins": {"typed": 5}})
    assert caught.value.field == "plugins.typed"
    assert caught.value.message == (
        "plugin 'typed' takes list[str] | str | None here: Expected `str | array | null`, got `int`"
    )
    assert host.preprocess_request({"prompt": "p", "plugins": {"typed": ["a"]}})["prompt"] == "p"


def test_a_refusal_of_the_plugins_field_is_narrowed_to_the_plugins_own(tmp_path: Path) -> None:
    host = host_with(tmp_path, "typed", TYPED)
    with pytest.raises(PluginRejected) as caught:
        host.preprocess_request({"prompt": "p", "plugins": {"typed": "whole"}})
    assert caught.value.field == "plugins.typed"


def test_a_returned_request_the_schema_refuses_is_the_plugins_error(tmp_path: Path) -> None:
    host = host_with(tmp_path, "typed", TYPED)

    def check(request: dict[str, Any]) -> tuple[str, str] | None:
        return None if isinstance(request["prompt"], str) else ("prompt", "must be text")

    request = {"prompt": "p", "plugins": {"typed": "number"}}
    with pytest.raises(PluginRejected) as caught:
        host.preprocess_request(request, check)
    assert caught.value.field == "prompt"
    assert caught.value.message == (
        "plugin 'typed' returned a request the request schema refuses (prompt: must be "
        "text; it returned int 5); disable it with `impasto plugins disable typed`"
    )


def test_a_plugin_that_failed_to_load_cannot_be_enabled(tmp_path: Path) -> None:
    write_plugin(tmp_path, "broken", "raise ImportError('needs frobnicate')")
    host = build_plugin_manager(data_dir=tmp_path, entry_points=False)
    with pytest.raises(PluginUnavailableError) as caught:
        host.set_enabled("broken", True)
    assert str(caught.value).startswith(
        "plugin 'broken' failed to load (ImportError: needs frobnicate); fix that and restart"
    )
    assert not host.set_enabled("broken", False)["enabled"]  # disabling it is kept


FIRST = """
from impasto.plugins import hookimpl

TOKEN = None
SEEN = []


@hookimpl(tryfirst=True)
def postprocess_result(result):
    SEEN.append(("first", result.index))
    if result.index == 1:
        TOKEN.cancel()  # the job's cancel comes while this postprocessor runs
"""

SECOND = """
from impasto.plugins import hookimpl

SEEN = []


@hookimpl
def postprocess_result(result):
    SEEN.append(("second", result.index))
"""


def test_a_cancel_during_postprocessing_stops_the_job_and_keeps_no_image(tmp_path: Path) -> None:
    """The worker checks the cancel before each postprocessor and each write, and removes the
    images it wrote already."""
    from impasto.engine import CancelToken, GeneratedImage, GenerationCancelled
    from impasto.worker.outputs import write_outputs
    from tests.fake_jobs import Job

    write_plugin(tmp_path, "first", FIRST)
    write_plugin(tmp_path, "second", SECOND)
    host = build_plugin_manager(data_dir=tmp_path, entry_points=False)
    first, second = (host.records[name].module for name in ("first", "second"))
    first.TOKEN = token = CancelToken()  # type: ignore[union-attr]
    job: Any = Job("job-1", str(tmp_path / "out"), plugins={"first": {}, "second": {}})
    images = [GeneratedImage(Image.new("RGB", (8, 8)), seed) for seed in (1, 2)]
    with pytest.raises(GenerationCancelled):
        write_outputs(job, None, images, host, token)
    assert first.SEEN == [("first", 0), ("first", 1)]  # type: ignore[union-attr]
    assert second.SEEN == [("second", 0)]  # type: ignore[union-attr]  # not after the cancel
    assert list((tmp_path / "out").iterdir()) == []  # image 0 was written, then removed
