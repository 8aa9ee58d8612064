"""`impasto plugins list|enable|disable`."""

from __future__ import annotations

import argparse

from impasto.cli.common import EXIT_OK, Context, add_json_option, print_json


def register(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    connection: argparse.ArgumentParser,
) -> None:
    """Add `plugins` with its list, enable and disable subcommands."""
    plugins = commands.add_parser("plugins", help="list, enable or disable plugins")
    actions = plugins.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = actions.add_parser("list", parents=[connection], help="installed plugins")
    add_json_option(listing, "the plugins as GET /api/v1/plugins answers them")
    listing.set_defaults(handler=list_plugins)
    for action, help_text in (
        ("enable", "enable a plugin from the next job on"),
        ("disable", "disable a plugin from the next job on"),
    ):
        sub = actions.add_parser(action, parents=[connection], help=help_text)
        sub.add_argument("name", help="plugin name (see `impasto plugins list`)")
        sub.set_defaults(handler=set_enabled, enabled=action == "enable")


def list_plugins(args: argparse.Namespace, context: Context) -> int:
    """One line per plugin: name, version, state, its load error if any, and how often its
    hooks failed since the daemon started, with the last failure."""
    with context.connect(args) as client:
        plugins = client.plugins()
    if args.json:
        print_json(plugins)
        return EXIT_OK
    for plugin in plugins:
        state = "enabled" if plugin.enabled else "disabled"
        if plugin.error:
            state = f"failed to load: {plugin.error}"
        kind = " (built-in)" if plugin.builtin else ""
        print(f"{plugin.name} {plugin.version}{kind}: {state}")
        if plugin.failures:
            times = "once" if plugin.failures == 1 else f"{plugin.failures} times"
            print(f"  failed {times}, last: {plugin.last_failure}")
    return EXIT_OK


def set_enabled(args: argparse.Namespace, context: Context) -> int:
    """Enable or disable one plugin."""
    with context.connect(args) as client:
        plugin = client.set_plugin_enabled(args.name, args.enabled)
    print(f"{plugin.name} is {'enabled' if plugin.enabled else 'disabled'} from the next job on")
    return EXIT_OK
