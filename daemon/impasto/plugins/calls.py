"""Calling plugin code: what it raises, or returns of the wrong type, is pinned on the plugin."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import inspect
import logging
import re
import signal
import threading
import types
import typing
from collections.abc import Callable
from typing import Any

import msgspec

from impasto.plugins.types import PluginFailed, PluginRejected, PluginReturnedWrong

log = logging.getLogger("impasto.plugins")


def from_ctrl_c(exc: BaseException) -> bool:
    """Whether ``exc`` may be the user's Ctrl+C rather than the plugin's own doing.

    Python raises KeyboardInterrupt for SIGINT only in the main thread, and only where SIGINT's
    handler raises it: Python's default one, or asyncio.run's (on a second Ctrl+C). Anywhere
    else (an API request's thread, the worker, which ignores SIGINT, the daemon's event loop,
    which turns SIGINT into a stop) a KeyboardInterrupt was raised by the plugin's code."""
    if not isinstance(exc, KeyboardInterrupt):
        return False
    if threading.current_thread() is not threading.main_thread():
        return False
    handler = signal.getsignal(signal.SIGINT)
    if handler is signal.default_int_handler:
        return True
    # asyncio.run's: functools.partial(Runner._on_sigint, main_task=...)
    runner = getattr(getattr(handler, "func", handler), "__self__", None)
    return isinstance(runner, asyncio.Runner)


def call_plugin(
    plugin: str,
    hook: str,
    function: Callable[..., Any],
    *args: Any,
    passes: tuple[type[BaseException], ...] = (),
    **kwargs: Any,
) -> Any:
    """``function(*args, **kwargs)``, a plugin's code. Whatever it raises (BaseException too:
    SystemExit from an argparse inside it, GeneratorExit, a KeyboardInterrupt of its own) is
    logged with its traceback and raised as PluginFailed naming the plugin; ``passes`` lists
    the exceptions its caller handles itself. A Ctrl+C goes on stopping the daemon."""
    try:
        value = function(*args, **kwargs)
    except passes:
        raise
    except BaseException as exc:
        if from_ctrl_c(exc):
            log.warning("interrupted (Ctrl+C) while plugin %s ran %s", plugin, hook)
            raise
        log.error("plugin %s failed in %s", plugin, hook, exc_info=exc)
        raise PluginFailed(plugin, hook, exc) from exc
    if inspect.isawaitable(value):
        if inspect.iscoroutine(value):
            value.close()  # never run: no "was never awaited" warning on top of the error
        expected = "a plain value (hooks are called, not awaited: use def, not async def)"
        raise wrong_return(plugin, hook, value, expected)
    return value


# How long the daemon waits for a hook run on behalf of a request (or its stop), and how many
# calls of one plugin that timed out and still run it lets be before refusing it at once.
HOOK_TIMEOUT = 30.0
MOST_STUCK = 4


class HookTimeout(TimeoutError):
    """A plugin's hook did not return in time; its thread goes on in the background."""


class TimedCalls:
    """Runs hooks that the API waits on (a request's preprocessors, the styles listing, the
    stop) each on a daemon thread of its own, waiting at most ``timeout`` seconds: a plugin
    that hangs fails its own calls (HookTimeout, pinned on it by call_plugin), and once
    ``most`` of its calls timed out and still run, it is refused at once until one returns.
    Calls that merely run at the same time (a burst of requests) are never refused. What the
    hook raises is raised again in the caller's thread, traceback and all."""

    def __init__(self, timeout: float = HOOK_TIMEOUT, most: int = MOST_STUCK) -> None:
        self.timeout = timeout
        self.most = most
        self._stuck: dict[str, int] = {}
        self._lock = threading.Lock()

    def wrap(self, plugin: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                if self._stuck.get(plugin, 0) >= self.most:
                    raise HookTimeout(
                        f"{self.most} earlier calls of its hooks did not return within "
                        f"{self.timeout:g} s and still run, so it is not called again until "
                        "one does"
                    )
            outcome: dict[str, Any] = {}
            state = {"ended": False, "stuck": False}
            context = contextvars.copy_context()

            def run() -> None:
                try:
                    outcome["value"] = context.run(function, *args, **kwargs)
                except BaseException as exc:  # raised again in the caller's thread
                    outcome["error"] = exc
                finally:
                    with self._lock:
                        state["ended"] = True
                        if state["stuck"]:
                            self._stuck[plugin] -= 1

            thread = threading.Thread(target=run, name=f"plugin {plugin}", daemon=True)
            thread.start()
            thread.join(self.timeout)
            with self._lock:
                if not state["ended"]:
                    state["stuck"] = True
                    self._stuck[plugin] = self._stuck.get(plugin, 0) + 1
            if state["stuck"]:
                raise HookTimeout(
                    f"did not return within {self.timeout:g} s (it goes on in the background)"
                )
            if "error" in outcome:
                raise outcome["error"]
            return outcome.get("value")

        return timed


def wrong_return(plugin: str, hook: str, value: Any, expected: str) -> PluginReturnedWrong:
    """The error for a hook that returned ``value`` where it should return ``expected``,
    logged (the job or request it fails names the plugin)."""
    error = PluginReturnedWrong(plugin, hook, value, expected)
    log.error("%s", error.message)
    return error


def check_options(plugin: str, options_type: Any, value: Any) -> None:
    """Refuse request options of another type than the plugin's OPTIONS declares."""
    if options_type is None:
        return
    try:
        msgspec.convert(value, options_type)
    except msgspec.ValidationError as exc:
        got = str(exc).replace(" - at `$`", "")
        message = f"plugin {plugin!r} takes {type_name(options_type)} here: {got}"
        raise PluginRejected(plugin, message, f"plugins.{plugin}") from None


def type_name(hint: Any) -> str:
    """A type as a message names it: ``list[str] | str | None``, ``2 | 4 | {scale: 2 | 4}``."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return " | ".join(type_name(arg) for arg in typing.get_args(hint))
    if typing.get_origin(hint) is typing.Literal:  # Literal[2, 4]: the values themselves
        return " | ".join(repr(arg) for arg in typing.get_args(hint))
    if isinstance(hint, type) and issubclass(hint, msgspec.Struct):
        fields = msgspec.structs.fields(hint)
        return "{" + ", ".join(f"{f.encode_name}: {type_name(f.type)}" for f in fields) + "}"
    if hint is type(None) or hint is None:
        return "None"
    return hint.__name__ if isinstance(hint, type) else str(hint).replace("typing.", "")


# The image modes a PNG stores (and the rest of Impasto reads back) as they are.
PNG_MODES = ("1", "L", "LA", "I", "I;16", "P", "RGB", "RGBA")


def checked_image(plugin: str, image: Any) -> Any:
    """postprocess_result's answer, checked: a PIL image a PNG can hold, or None (so an image
    the PNG writer refuses is the plugin's error, not the output folder's)."""
    from PIL import Image

    if image is None:
        return None
    if not isinstance(image, Image.Image):
        expected = "a PIL image (PIL.Image.Image) or None"
        raise wrong_return(plugin, "postprocess_result", image, expected)
    if image.mode not in PNG_MODES or image.width < 1 or image.height < 1:
        shown = f"an image of mode {image.mode} and size {image.width}x{image.height}"
        error = PluginFailed(
            plugin,
            "postprocess_result",
            TypeError(
                f"returned {shown}, expected one a PNG can hold: mode "
                f"{', '.join(PNG_MODES)}, at least 1x1 pixels (convert it first)"
            ),
        )
        log.error("%s", error.message)
        raise error
    return image


# PNG text chunk keywords: 1 to 79 Latin-1 characters, printable, no leading or trailing space.
_KEYWORD = re.compile(r"[\x20-\x7e\xa1-\xff]{1,79}")


def checked_text(plugin: str, text: Any) -> None:
    """``result.text`` after a postprocessor ran, checked: PNG text chunks, keyword -> text.
    What a plugin put there of another kind is that plugin's error, not the PNG writer's or
    the next plugin's."""
    problem = None
    if not isinstance(text, dict):
        problem = f"result.text is now {type(text).__name__} {repr(text)[:40]}, not a dict"
    else:
        for key, value in text.items():
            if not isinstance(key, str) or not _KEYWORD.fullmatch(key) or key != key.strip():
                problem = (
                    f"result.text has the key {repr(key)[:60]}; a PNG text keyword is 1 to 79 "
                    "printable Latin-1 characters without leading or trailing spaces"
                )
                break
            if not isinstance(value, str):
                problem = (
                    f"result.text[{key!r}] is {type(value).__name__} {repr(value)[:40]}; "
                    "PNG text chunks hold str (convert it, json.dumps for structures)"
                )
                break
    if problem is not None:
        error = PluginFailed(plugin, "postprocess_result", TypeError(problem))
        log.error("%s", error.message)
        raise error


def route_entries(plugin: str, found: Any, is_handler: Callable[[Any], bool]) -> list[Any]:
    """register_routes' answer, checked: route handlers, controllers or routers, or None."""
    if found is None:
        return []
    if not isinstance(found, list | tuple) or not all(map(is_handler, found)):
        expected = "a list of Litestar route handlers, controllers or routers, or None"
        raise wrong_return(plugin, "register_routes", found, expected)
    return list(found)


def sampler_entries(plugin: str, entries: Any) -> list[tuple[Any, ...]]:
    """register_samplers' answer, checked: (id, class, label[, settings]) entries, or None."""
    if entries is None:
        return []
    entry_shape = "(sampler id, class, display name[, settings dict])"
    if not isinstance(entries, list | tuple):
        expected = f"a list of {entry_shape} tuples, or None"
        raise wrong_return(plugin, "register_samplers", entries, expected)
    for entry in entries:
        if not (
            isinstance(entry, tuple | list)
            and len(entry) in (3, 4)
            and isinstance(entry[0], str)
            and isinstance(entry[1], type)
            and isinstance(entry[2], str)
            and (len(entry) == 3 or isinstance(entry[3], dict))
        ):
            raise wrong_return(plugin, "register_samplers", entry, f"an entry {entry_shape}")
    return [tuple(entry) for entry in entries]


def style_entries(plugin: str, found: Any) -> dict[str, dict[str, str]]:
    """prompt_styles' answer, checked: name -> {prompt, negative_prompt} (strings), or None."""
    if found is None:
        return {}
    expected = "a dict of style name -> {'prompt': str, 'negative_prompt': str}, or None"
    if not isinstance(found, dict):
        raise wrong_return(plugin, "prompt_styles", found, expected)
    styles = {}
    for name, style in found.items():
        if not isinstance(style, dict) or not all(
            isinstance(style.get(key, ""), str) for key in ("prompt", "negative_prompt")
        ):
            raise wrong_return(plugin, "prompt_styles", {name: style}, expected)
        styles[str(name)] = {
            "prompt": style.get("prompt", ""),
            "negative_prompt": style.get("negative_prompt", ""),
        }
    return styles


class PluginPipeline:
    """A pipeline a plugin's model_loader returned: its generate and close are the plugin's
    code too, so what they raise (but the engine's own errors, which a wrapped engine
    pipeline raises: a cancel, a bad request) and what generate returns is pinned on it."""

    def __init__(self, plugin: str, inner: Any) -> None:
        self.plugin = plugin
        self.inner = inner

    @classmethod
    def of(cls, plugin: str, pipeline: Any) -> PluginPipeline:
        """model_loader's non-None answer, checked (it has generate and close) and wrapped."""
        if not all(callable(getattr(pipeline, m, None)) for m in ("generate", "close")):
            expected = "a pipeline (an object with generate() and close()) or None"
            raise wrong_return(plugin, "model_loader", pipeline, expected)
        return cls(plugin, pipeline)

    def generate(self, params: Any, progress: Any = None, cancel: Any = None) -> list[Any]:
        from PIL import Image

        from impasto.engine.types import EngineError, GeneratedImage

        hook = "model_loader (its pipeline's generate)"
        images = call_plugin(
            self.plugin,
            hook,
            self.inner.generate,
            params,
            progress=progress,
            cancel=cancel,
            passes=(EngineError,),
        )
        if not isinstance(images, list) or not all(
            isinstance(g, GeneratedImage) and isinstance(g.image, Image.Image) for g in images
        ):
            expected = "a list of impasto.engine.GeneratedImage holding PIL images"
            raise wrong_return(self.plugin, hook, images, expected)
        return images

    def close(self) -> None:
        """Close it; a failure is logged (the pipeline is dropped either way)."""
        with contextlib.suppress(PluginFailed):  # logged by call_plugin
            call_plugin(self.plugin, "model_loader (its pipeline's close)", self.inner.close)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)
