"""Finds plugins, registers them with pluggy, keeps their enabled flags, and calls their hooks."""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import pluggy

from impasto.plugins.calls import (
    PluginPipeline,
    TimedCalls,
    call_plugin,
    checked_image,
    checked_text,
    route_entries,
    sampler_entries,
    style_entries,
    wrong_return,
)
from impasto.plugins.preprocess import Check, run_preprocessors
from impasto.plugins.types import (
    PluginContext,
    PluginError,
    PluginFailed,
    PluginUnavailableError,
    PostprocessResult,
    RejectRequest,
    UnknownPluginError,
)

log = logging.getLogger("impasto.plugins")

ENTRY_POINT_GROUP = "impasto.plugins"
STATE_FILE = "plugins.json"
# Built-in behaviour goes through the same hooks as everyone's plugins (datasette's way).
BUILTIN_PLUGINS = {
    "png_metadata": "impasto.plugins.png_metadata",
    "prompt_filter": "impasto.plugins.prompt_filter",
}
HOOKS = (
    "startup",
    "shutdown",
    "preprocess_request",
    "postprocess_result",
    "register_samplers",
    "register_routes",
    "model_loader",
    "prompt_styles",
)

# A job error a plugin's hook caused (types.PluginFailed's message), naming the plugin.
JOB_FAILURE = re.compile(r"plugin '([^']+)' failed in ")
# Hooks the API waits on while it serves (or stops): a plugin that hangs in one fails that
# call after calls.HOOK_TIMEOUT seconds. The start's hooks run on the main thread (Ctrl+C).
TIMED_HOOKS = frozenset({"preprocess_request", "prompt_styles", "shutdown"})


@dataclass
class PluginRecord:
    """One discovered plugin: where it came from, whether it loaded, and what it implements."""

    name: str
    version: str
    source: str
    builtin: bool = False
    module: ModuleType | None = None
    error: str | None = None
    default_enabled: bool = True
    hooks: list[str] = field(default_factory=list)
    # The type its request options must have (the module's OPTIONS); None takes any value.
    options_type: Any = None


def describe_error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


class PluginHost:
    """The pluggy manager plus, per plugin, its record, config and persisted enabled flag."""

    def __init__(
        self,
        pm: pluggy.PluginManager,
        records: list[PluginRecord],
        config: Mapping[str, dict[str, Any]],
        *,
        data_dir: Path | None = None,
        models_dir: Path | None = None,
        state_file: Path | None = None,
    ) -> None:
        self.pm = pm
        self.records = {r.name: r for r in records}
        self.config = {name: dict(table) for name, table in config.items()}
        for name, table in self.config.items():
            # `enabled = "false"` would leave the plugin running: refuse it, as a load error.
            record = self.records.get(name)
            flag = table.get("enabled")
            if record is not None and "enabled" in table and not isinstance(flag, bool):
                record.error = f"[plugins.{name}] enabled must be true or false, not {flag!r}"
        self.data_dir = data_dir
        self.models_dir = models_dir
        self.state_file = state_file
        self.sampler_owner: dict[str, str] = {}
        self.timed = TimedCalls()
        # name -> (how many times its hooks failed, the last failure's message)
        self.failures: dict[str, tuple[int, str]] = {}
        self._failures_lock = threading.Lock()
        self._state = self._read_state()
        # set_enabled runs in the API's threads: one writer of the state file at a time.
        self._write_lock = threading.Lock()

    # --- state ----------------------------------------------------------------------------

    def _read_state(self) -> dict[str, bool]:
        if self.state_file is None or not self.state_file.is_file():
            return {}
        try:
            data = json.loads(self.state_file.read_text())
        except (OSError, ValueError) as exc:
            log.warning("ignoring unreadable %s: %s", self.state_file, exc)
            return {}
        enabled = data.get("enabled", {}) if isinstance(data, dict) else {}
        return {str(k): bool(v) for k, v in enabled.items()}

    def _write_state(self) -> None:
        if self.state_file is None:
            return
        with self._write_lock:
            self.state_file.parent.mkdir(parents=True, exist_ok=True)
            temp = self.state_file.with_suffix(".tmp")
            temp.write_text(json.dumps({"enabled": dict(self._state)}, indent=2, sort_keys=True))
            os.replace(temp, self.state_file)

    def enabled(self, name: str) -> bool:
        """The flag set by API/CLI, else ``enabled`` in its config table, else its default."""
        if name in self._state:
            return self._state[name]
        record = self.records.get(name)
        configured = self.config.get(name, {}).get("enabled")
        if isinstance(configured, bool):
            return configured
        return record.default_enabled if record else False

    def active(self, name: str) -> bool:
        """Enabled and loaded without error."""
        record = self.records.get(name)
        return record is not None and record.error is None and self.enabled(name)

    def set_enabled(self, name: str, enabled: bool) -> dict[str, Any]:
        """Persist the flag; it applies to the next job. Unknown names raise UnknownPluginError,
        enabling one that failed to load PluginUnavailableError (disabling it is kept).

        Writes the state file: the API calls it in a thread."""
        if name not in self.records:
            known = ", ".join(sorted(self.records)) or "none"
            raise UnknownPluginError(f"no plugin named {name!r}; installed: {known}")
        if enabled and self.records[name].error is not None:
            raise PluginUnavailableError(self.failed_to_load(name))
        self._state[name] = enabled
        self._write_state()
        return self.describe(self.records[name])

    def describe(self, record: PluginRecord) -> dict[str, Any]:
        """A plugin as GET /api/v1/plugins lists it."""
        return {
            "name": record.name,
            "version": record.version,
            "enabled": self.enabled(record.name),
            "builtin": record.builtin,
            "hooks": record.hooks,
            "source": self.public(record.source),
            "error": self.public(record.error) if record.error is not None else None,
            "failures": self.failures.get(record.name, (0, ""))[0],
            "last_failure": self.failures.get(record.name, (0, None))[1],
        }

    def note_failure(self, name: str, message: str) -> None:
        """Count a failure of one of ``name``'s hooks (GET /plugins shows it with the last)."""
        if name not in self.records:
            return
        with self._failures_lock:
            count = self.failures.get(name, (0, ""))[0]
            self.failures[name] = (count + 1, self.public(message))

    def note_job_error(self, error: str) -> None:
        """A job failed with ``error``: where a plugin's hook failed it, count that failure
        (the worker's hooks run in another process; their error names the plugin)."""
        match = JOB_FAILURE.match(error)
        if match is not None:
            self.note_failure(match.group(1), error)

    def public(self, text: str) -> str:
        """``text`` with the data and models folders named by their labels (``<data>/x``): no
        local path reaches a client, as everywhere in Impasto (responses get shared)."""
        folders = [(self.models_dir, "<models>"), (self.data_dir, "<data>")]
        spellings = [
            (spelling, label)
            for folder, label in folders
            if folder is not None
            for spelling in {str(folder), os.path.realpath(folder)}
        ]
        for spelling, label in sorted(spellings, key=lambda pair: -len(pair[0])):
            text = text.replace(spelling, label)
        return text

    def statuses(self) -> list[dict[str, Any]]:
        """Every discovered plugin, loaded or not, sorted by name."""
        return [self.describe(self.records[name]) for name in sorted(self.records)]

    def failed_to_load(self, name: str) -> str:
        """Why a plugin that failed to load (or to start) does not run, and what to do."""
        return (
            f"plugin {name!r} failed to load ({self.public(str(self.records[name].error))}); "
            "fix that and restart the daemon (`impasto plugins list` shows every load error)"
        )

    def not_running(self, name: str) -> str:
        """Why an installed plugin is not active: it failed to load, or it is disabled."""
        if self.records[name].error is not None:
            return self.failed_to_load(name)
        return f"plugin {name!r} is disabled; enable it with `impasto plugins enable {name}`"

    def job_plugins(self) -> dict[str, dict[str, Any]]:
        """The active plugins and their config, as a job carries them to the worker."""
        return {name: self.config.get(name, {}) for name in self.records if self.active(name)}

    # --- calling hooks --------------------------------------------------------------------

    def impls(self, hook: str, active: Mapping[str, Any]) -> list[pluggy.HookImpl]:
        caller = getattr(self.pm.hook, hook)
        # pluggy runs the last registered (and tryfirst) implementation first; so do we.
        return [
            impl
            for impl in reversed(caller.get_hookimpls())
            if impl.plugin_name in active and not (impl.hookwrapper or impl.wrapper)
        ]

    def context(self, name: str, config: Mapping[str, Any] | None, options: Any) -> Any:
        return PluginContext(
            name=name,
            config=dict(config if config is not None else self.config.get(name, {})),
            options=options,
            data_dir=self.data_dir,
            models_dir=self.models_dir,
        )

    def invoke(self, hook: str, impl: pluggy.HookImpl, kwargs: dict[str, Any]) -> Any:
        """Call one plugin's implementation; anything it raises is pinned on that plugin (a
        preprocessor's RejectRequest is its caller's to word). The hooks the API waits on
        have a time limit (TimedCalls)."""
        passes = (RejectRequest,) if hook == "preprocess_request" else ()
        args = [kwargs[arg] for arg in impl.argnames]
        function = impl.function
        if hook in TIMED_HOOKS:
            function = self.timed.wrap(impl.plugin_name, function)
        return call_plugin(impl.plugin_name, hook, function, *args, passes=passes)

    def preprocess_request(
        self, request: dict[str, Any], check: Check | None = None
    ) -> dict[str, Any]:
        """Run every active preprocess_request hook; raises PluginRejected or PluginFailed
        (their messages naming local folders by their labels: a client reads them).

        ``check`` is called on each request a plugin returns: None where the request schema
        takes it, else (field, why), which is that plugin's error."""
        try:
            return run_preprocessors(self, request, check)
        except PluginError as exc:
            exc.message = self.public(exc.message)
            exc.args = (exc.message,)
            if isinstance(exc, PluginFailed) or getattr(exc, "fault", False):
                self.note_failure(exc.plugin, exc.message)
            raise

    def postprocess(
        self,
        result: PostprocessResult,
        image: Any,
        active: Mapping[str, Any],
        options: Mapping[str, Any] | None = None,
        cancel: Any = None,
    ) -> Any:
        """Pass one output image through every active postprocess_result hook, in order;
        ``cancel`` (the job's cancel token) is checked before each plugin."""
        options = options or {}
        for impl in self.impls("postprocess_result", active):
            if cancel is not None:
                cancel.raise_if_cancelled()
            name = impl.plugin_name
            context = self.context(name, active[name], options.get(name))
            kwargs = {"result": result, "image": image, "context": context}
            replaced = checked_image(name, self.invoke("postprocess_result", impl, kwargs))
            checked_text(name, result.text)
            if replaced is not None:
                image = replaced
        return image

    def load_model(
        self, model_dir: str, active: Mapping[str, Any], options: Mapping[str, Any] | None = None
    ) -> Any:
        """The first pipeline an active model_loader returns for ``model_dir``, else None."""
        options = options or {}
        for impl in self.impls("model_loader", active):
            name = impl.plugin_name
            context = self.context(name, active[name], options.get(name))
            pipeline = self.invoke(
                "model_loader", impl, {"model_dir": model_dir, "context": context}
            )
            if pipeline is None:
                continue
            return PluginPipeline.of(name, pipeline)
        return None

    def register_samplers(self, register: Callable[..., None]) -> None:
        """Add every loaded plugin's samplers (disabled ones are refused at submit time).

        Each entry is ``(id, class, label)`` or ``(id, class, label, settings)``, settings being
        ``register_sampler``'s keywords (``recommended_steps``, ``recommended_schedule``, ...).
        """
        loaded = {name: None for name, r in self.records.items() if r.error is None}
        for impl in self.impls("register_samplers", loaded):
            name = impl.plugin_name
            context = self.context(name, None, None)
            try:
                entries = self.invoke("register_samplers", impl, {"context": context})
                for sampler_id, cls, label, *settings in sampler_entries(name, entries):
                    register(sampler_id, cls, label, **(settings[0] if settings else {}))
                    self.sampler_owner[sampler_id] = name
            except (PluginError, ValueError, TypeError) as exc:
                self.records[name].error = f"register_samplers: {exc}"

    def route_handlers(
        self, is_handler: Callable[[Any], bool] = lambda _: True
    ) -> dict[str, list[Any]]:
        """Each loaded plugin's extra route handlers (each passing ``is_handler``), by name."""
        loaded = {name: None for name, r in self.records.items() if r.error is None}
        handlers: dict[str, list[Any]] = {}
        for impl in self.impls("register_routes", loaded):
            name = impl.plugin_name
            context = self.context(name, None, None)
            try:
                found = self.invoke("register_routes", impl, {"context": context})
                found = route_entries(name, found, is_handler)
            except PluginError as exc:
                self.records[name].error = str(exc)
                continue
            if found:
                handlers.setdefault(name, []).extend(found)
        return handlers

    def prompt_styles(self) -> dict[str, dict[str, str]]:
        """Every active plugin's named prompt styles (the first plugin to name one wins); a
        plugin whose hook fails is left out of the listing (and logged)."""
        active = self.job_plugins()
        styles: dict[str, dict[str, str]] = {}
        for impl in self.impls("prompt_styles", active):
            context = self.context(impl.plugin_name, active[impl.plugin_name], None)
            try:
                found = self.invoke("prompt_styles", impl, {"context": context})
                for name, style in style_entries(impl.plugin_name, found).items():
                    styles.setdefault(name, style)
            except PluginError as exc:
                self.note_failure(impl.plugin_name, exc.message)
                continue  # logged where it was raised
        return styles

    def startup(self, app_context: Any) -> None:
        """Call startup on each active plugin; one that raises is marked broken, not fatal."""
        self._lifecycle("startup", app_context=app_context)

    def shutdown(self) -> None:
        """Call shutdown on each active plugin, logging (not raising) failures."""
        self._lifecycle("shutdown")

    def _lifecycle(self, hook: str, **kwargs: Any) -> None:
        active = self.job_plugins()
        for impl in self.impls(hook, active):
            name = impl.plugin_name
            try:
                value = self.invoke(
                    hook, impl, {**kwargs, "context": self.context(name, None, None)}
                )
                if value is not None:
                    raise wrong_return(name, hook, value, "None")
            except PluginError as exc:
                self.note_failure(name, exc.message)
                if hook == "startup":
                    self.records[name].error = str(exc)
