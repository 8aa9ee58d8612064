"""Running the preprocessors: each one's answer is checked as a client's request is (the
schema, the plugin options in it, a plugin's sampler), and what it refuses is pinned on it."""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from impasto.plugins.calls import check_options, wrong_return
from impasto.plugins.types import PluginRejected, RejectRequest

if TYPE_CHECKING:
    from impasto.plugins.manager import PluginHost

log = logging.getLogger("impasto.plugins")
# Checks a preprocessed request against the request schema: None, or (field, why).
Check = Callable[[dict[str, Any]], tuple[str, str] | None]


def run_preprocessors(
    host: PluginHost, request: dict[str, Any], check: Check | None
) -> dict[str, Any]:
    """Every active preprocess_request hook in turn (PluginHost.preprocess_request)."""
    check_sampler(host, request.get("sampler"))
    active = host.job_plugins()
    options = request.get("plugins") or {}
    for name, value in options.items():
        check_options_for(host, name, value)
    for impl in host.impls("preprocess_request", active):
        name = impl.plugin_name
        context = host.context(name, active[name], options.get(name))
        # Each plugin gets a copy of its own (one that hangs past its time limit keeps its
        # copy, not ours); one it changed in place and answered None for counts as returned,
        # so it is checked and pinned on that plugin like a returned one.
        given = copy.deepcopy(request)
        try:
            value = host.invoke("preprocess_request", impl, {"request": given, "context": context})
        except RejectRequest as exc:
            # A plugin speaks for its own options: all of "plugins" is narrowed to them.
            field = f"plugins.{name}" if exc.field == "plugins" else exc.field
            raise PluginRejected(
                name, f"rejected by plugin {name!r}: {exc.message}", field
            ) from None
        if value is None and given != request:
            value = given
        if value is None:
            continue
        if not isinstance(value, dict):
            expected = "a dict (the request) or None"
            raise wrong_return(name, "preprocess_request", value, expected)
        refused = check(value) if check is not None else None
        if refused is not None:
            field, why = refused
            if field in value:  # what it returned there: 5 for a prompt, say
                got = value[field]
                why += f"; it returned {type(got).__name__} {repr(got)[:40]}"
            message = (
                f"plugin {name!r} returned a request the request schema refuses "
                f"({field}: {why}); disable it with `impasto plugins disable {name}`"
            )
            log.error("%s", message)
            raise PluginRejected(name, message, field, fault=True)
        check_returned_options(host, name, options, value.get("plugins"))
        request = value
        options = request.get("plugins") or {}
    check_sampler(host, request.get("sampler"))
    return request


def check_returned_options(
    host: PluginHost, name: str, before: Mapping[str, Any], after: Any
) -> None:
    """Plugin options a preprocessor put in the request pass the checks a client's do (a
    plugin that runs, options of its OPTIONS type): else they are that preprocessor's error,
    not a job failing later in the worker."""
    if not isinstance(after, dict):
        return  # the request schema's to refuse
    for option, value in after.items():
        if option in before and before[option] == value:
            continue
        try:
            check_options_for(host, option, value)
        except PluginRejected as exc:
            message = (
                f"plugin {name!r} returned a request with options that are refused "
                f"({exc.field}: {exc.message}); disable it with "
                f"`impasto plugins disable {name}`"
            )
            log.error("%s", message)
            raise PluginRejected(name, message, exc.field, fault=True) from None


def check_options_for(host: PluginHost, name: str, value: Any) -> None:
    """Options for a plugin that will not run (none of that name, disabled, failed to load)
    are refused: the request would otherwise run without what it asked for. So are options
    of a type other than the plugin's OPTIONS declares."""
    record = host.records.get(name)
    field = f"plugins.{name}"
    if record is None:
        known = ", ".join(sorted(host.records)) or "none"
        raise PluginRejected(name, f"no plugin named {name!r}; installed: {known}", field)
    if record.error is not None:
        raise PluginRejected(name, host.failed_to_load(name), field)
    if not host.enabled(name):
        message = (
            f"plugin {name!r} is disabled, so these options would do nothing; enable it "
            f"with `impasto plugins enable {name}`"
        )
        raise PluginRejected(name, message, field)
    check_options(name, record.options_type, value)


def check_sampler(host: PluginHost, sampler: Any) -> None:
    owner = host.sampler_owner.get(str(sampler))
    if owner is not None and not host.active(owner):
        message = f"sampler {sampler!r} comes from a plugin that does not run: "
        raise PluginRejected(owner, message + host.not_running(owner), "sampler")
