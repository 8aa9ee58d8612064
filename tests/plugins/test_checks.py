"""What a plugin hands back is checked where Impasto takes it, and pinned on that plugin: the
image and text a postprocessor leaves, the options a preprocessor puts in the request; and what
the plugins' errors and listing tell a client names no local folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from impasto.plugins import PluginFailed, PluginRejected
from impasto.plugins.discovery import build_plugin_manager
from tests.plugins.test_calls import a_result, host_with, write_plugin

# A postprocessor that returns IMAGE and sets TEXT[key] = value (or replaces result.text).
WRITER = """
from impasto.plugins import hookimpl

IMAGE = None
TEXT = {}
REPLACE = None


@hookimpl
def postprocess_result(result, image):
    result.text.update(TEXT)
    if REPLACE is not None:
        result.text = REPLACE
    return IMAGE
"""


@pytest.fixture
def writer(tmp_path: Path) -> tuple[Any, Any]:
    host = host_with(tmp_path, "writer", WRITER)
    return host, host.records["writer"].module


def postprocess(host: Any) -> tuple[Any, Any]:
    result = a_result()
    image = host.postprocess(result, Image.new("RGB", (8, 8)), {"writer": {}})
    return result, image


@pytest.mark.parametrize(
    ("image", "shown"),
    [
        (Image.new("CMYK", (8, 8)), "mode CMYK and size 8x8"),
        (Image.new("F", (8, 8)), "mode F and size 8x8"),
        (Image.new("RGB", (0, 0)), "mode RGB and size 0x0"),
    ],
)
def test_an_image_a_png_cannot_hold_is_the_postprocessors_error(
    writer: tuple[Any, Any], image: Image.Image, shown: str
) -> None:
    """Not "cannot write mode CMYK as PNG ... check the folder" blaming the output folder."""
    host, module = writer
    module.IMAGE = image
    with pytest.raises(PluginFailed) as caught:
        postprocess(host)
    assert caught.value.plugin == "writer"
    assert caught.value.message.startswith(
        f"plugin 'writer' failed in postprocess_result: TypeError: returned an image of {shown}, "
        "expected one a PNG can hold: mode 1, L, LA, I, I;16, P, RGB, RGBA"
    ), caught.value.message


@pytest.mark.parametrize("mode", ["RGBA", "L", "P", "1"])
def test_another_mode_or_size_a_png_holds_is_taken(writer: tuple[Any, Any], mode: str) -> None:
    host, module = writer
    module.IMAGE = Image.new(mode, (16, 4))
    _, image = postprocess(host)
    assert (image.mode, image.size) == (mode, (16, 4))


@pytest.mark.parametrize(
    ("text", "replace", "said"),
    [
        ({"count": 5}, None, "result.text['count'] is int 5; PNG text chunks hold str"),
        ({"obj": {"a": 1}}, None, "result.text['obj'] is dict {'a': 1}; PNG text chunks hold"),
        ({"k" * 80: "v"}, None, "a PNG text keyword is 1 to 79 printable Latin-1 characters"),
        ({"bad\0key": "v"}, None, "result.text has the key 'bad\\x00key'; a PNG text keyword"),
        ({"名前": "v"}, None, "result.text has the key '名前'; a PNG text keyword"),
        ({" padded": "v"}, None, "result.text has the key ' padded'; a PNG text keyword"),
        ({}, "not a dict", "result.text is now str 'not a dict', not a dict"),
    ],
)
def test_text_a_png_cannot_hold_is_the_postprocessors_error(
    writer: tuple[Any, Any], text: dict[str, Any], replace: Any, said: str
) -> None:
    """Not the PNG writer's "'int' object has no attribute 'encode'" naming nobody, nor the
    next plugin's (png_metadata's) failure on a text that is no longer a dict."""
    host, module = writer
    module.TEXT, module.REPLACE = text, replace
    with pytest.raises(PluginFailed) as caught:
        postprocess(host)
    assert caught.value.plugin == "writer"
    assert said in caught.value.message, caught.value.message


def test_text_a_png_holds_is_written_as_the_plugin_left_it(writer: tuple[Any, Any]) -> None:
    host, module = writer
    module.TEXT = {"upscale": "2x lanczos", "note": "ünïcode value"}
    result, _ = postprocess(host)
    assert result.text == {"upscale": "2x lanczos", "note": "ünïcode value"}


# A preprocessor that sets the request's plugin options to what the prompt says.
SETTER = """
import json

from impasto.plugins import hookimpl


@hookimpl(trylast=True)
def preprocess_request(request):
    return {**request, "plugins": json.loads(request["prompt"])}
"""

TYPED = """
from impasto.plugins import hookimpl

OPTIONS = int | None
DEFAULT_ENABLED = False


@hookimpl
def preprocess_request(request, context):
    return None
"""


@pytest.mark.parametrize(
    ("options", "field", "said"),
    [
        ({"typed": "x"}, "plugins.typed", "plugin 'typed' takes int | None here"),
        ({"nosuch": 1}, "plugins.nosuch", "no plugin named 'nosuch'"),
        ({"prompt_filter": {}}, "plugins.prompt_filter", "plugin 'prompt_filter' is disabled"),
    ],
)
def test_options_a_preprocessor_puts_in_the_request_are_checked_as_a_clients(
    tmp_path: Path, options: dict[str, Any], field: str, said: str
) -> None:
    """Else they reach the worker unchecked (a job failing later, naming the wrong plugin) or
    are silently not run."""
    import json

    write_plugin(tmp_path, "typed", TYPED)
    host = host_with(tmp_path, "setter", SETTER)
    host.set_enabled("typed", True)
    if "prompt_filter" not in options:
        host.set_enabled("prompt_filter", True)
    with pytest.raises(PluginRejected) as caught:
        host.preprocess_request({"prompt": json.dumps(options), "plugins": {}})
    assert caught.value.plugin == "setter"
    assert caught.value.field == field
    assert caught.value.message.startswith(
        "plugin 'setter' returned a request with options that are refused "
    ), caught.value.message
    assert said in caught.value.message
    kept = {"prompt": json.dumps({"typed": 3}), "plugins": {}}
    assert host.preprocess_request(kept)["plugins"] == {"typed": 3}


def test_no_local_folder_reaches_a_client_through_the_plugins(tmp_path: Path) -> None:
    """GET /plugins (source, error, a duplicate's name) and a preprocessor's 422 name the data
    folder <data>, as job errors do."""
    data = str(tmp_path)
    write_plugin(tmp_path, "png_metadata", "")  # a file taking a built-in's name
    write_plugin(tmp_path, "reader", f"open({data + '/missing.toml'!r})")
    write_plugin(
        tmp_path,
        "refuser",
        "from impasto.plugins import hookimpl\n\n"
        f"@hookimpl\ndef preprocess_request():\n    open({data + '/styles.toml'!r})\n",
    )
    host = build_plugin_manager(data_dir=tmp_path, entry_points=False)
    listed = {item["name"]: item for item in host.statuses()}
    assert data not in repr(listed)
    assert listed["reader"]["source"] == "file <data>/plugins/reader.py"
    assert "'<data>/missing.toml'" in listed["reader"]["error"]
    assert listed["png_metadata (file png_metadata.py)"]["error"] == (
        "the name 'png_metadata' is already used by builtin impasto.plugins.png_metadata"
    )
    with pytest.raises(PluginRejected) as refused:
        host.preprocess_request({"prompt": "p", "plugins": {"reader": 1}})
    assert data not in refused.value.message and "<data>/missing.toml" in refused.value.message
    with pytest.raises(PluginFailed) as failed:
        host.preprocess_request({"prompt": "p"})
    assert data not in str(failed.value) and "'<data>/styles.toml'" in failed.value.message


SLEEPER = """
import time

from impasto.plugins import hookimpl


@hookimpl
def preprocess_request(request):
    time.sleep(2)


@hookimpl
def shutdown():
    time.sleep(2)
"""


def test_a_hook_the_api_waits_on_fails_when_it_does_not_return_in_time(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A request's preprocessor (and the stop's shutdown) waits no longer than the limit."""
    import time

    host = host_with(tmp_path, "sleeper", SLEEPER)
    host.timed.timeout = 0.2
    started = time.monotonic()
    with pytest.raises(PluginFailed) as caught:
        host.preprocess_request({"prompt": "p"})
    assert caught.value.message == (
        "plugin 'sleeper' failed in preprocess_request: HookTimeout: did not return within "
        "0.2 s (it goes on in the background); disable it with `impasto plugins disable sleeper`"
    )
    host.shutdown()  # logged, not raised: the daemon goes on stopping
    assert time.monotonic() - started < 1.5
    assert "plugin sleeper failed in shutdown" in caplog.text


MUTATOR = """
from impasto.plugins import hookimpl


@hookimpl
def preprocess_request(request):
    request["steps"] = 1000  # changed in place, answering None
    request["plugins"]["mutator"] = "kept?"
"""


def test_a_request_changed_in_place_is_checked_and_pinned_like_a_returned_one(
    tmp_path: Path,
) -> None:
    """Not passed on unchecked, to fail later without the plugin's name (or not at all)."""
    host = host_with(tmp_path, "mutator", MUTATOR)

    def check(request: dict[str, Any]) -> tuple[str, str] | None:
        return ("steps", "must be at most 150") if request["steps"] > 150 else None

    sent = {"prompt": "p", "steps": 20, "plugins": {}}
    with pytest.raises(PluginRejected) as caught:
        host.preprocess_request(sent, check)
    assert caught.value.plugin == "mutator" and caught.value.field == "steps"
    assert "plugin 'mutator' returned a request the request schema refuses" in str(caught.value)
    assert sent == {"prompt": "p", "steps": 20, "plugins": {}}  # the caller's is untouched
    done = host.preprocess_request(sent)
    assert (done["steps"], done["plugins"]) == (1000, {"mutator": "kept?"})


@pytest.mark.parametrize("flag", ["false", 0, "no"])
def test_an_enabled_setting_that_is_not_a_boolean_keeps_the_plugin_from_running(
    tmp_path: Path, flag: Any
) -> None:
    """`enabled = "false"` in config.toml was ignored, so the plugin (on by default) ran."""
    host = build_plugin_manager(
        data_dir=tmp_path, config={"png_metadata": {"enabled": flag}}, entry_points=False
    )
    assert not host.active("png_metadata")
    listed = {item["name"]: item for item in host.statuses()}["png_metadata"]
    assert listed["error"] == f"[plugins.png_metadata] enabled must be true or false, not {flag!r}"


def test_only_calls_that_timed_out_count_against_a_plugin() -> None:
    """A burst of calls running at once is let through; once ``most`` calls timed out and
    still run, the plugin is refused at once, until one of them returns."""
    import threading
    import time
    from concurrent.futures import ThreadPoolExecutor

    from impasto.plugins.calls import HookTimeout, TimedCalls

    timed = TimedCalls(timeout=0.3, most=2)
    quick = timed.wrap("quick", lambda n: time.sleep(0.1) or n)
    with ThreadPoolExecutor(8) as pool:
        assert list(pool.map(quick, range(8))) == list(range(8))

    release = threading.Event()
    hung = timed.wrap("hung", release.wait)
    for _ in range(2):
        with pytest.raises(HookTimeout, match=r"did not return within 0\.3 s"):
            hung()
    started = time.monotonic()
    with pytest.raises(HookTimeout, match="2 earlier calls of its hooks did not return"):
        hung()
    assert time.monotonic() - started < 0.1  # refused at once, no thread started
    release.set()
    time.sleep(0.1)
    assert hung() is True  # they returned: it is called again
