"""`impasto config`: every effective setting, where its value came from, and what it does."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import msgspec

from impasto.cli.common import EXIT_OK, EXIT_USAGE, Context
from impasto.paths import resolve_paths
from impasto.settings import field_docs, markdown_table, secret_fields
from impasto.settings_load import load_settings


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `config`."""
    parser = commands.add_parser(
        "config",
        help="show the effective settings and where each came from",
        description="Show every setting: its value, its source and what it does.",
    )
    parser.add_argument("--config", type=Path, metavar="PATH", help="config.toml to read")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    parser.add_argument(
        "--show-secrets",
        "--show-token",
        dest="show_secrets",
        action="store_true",
        help="print the tokens (token, hf_token) unmasked",
    )
    parser.add_argument(
        "--markdown", action="store_true", help="print the settings reference table (for docs)"
    )
    parser.set_defaults(handler=show_config)


def show_config(args: argparse.Namespace, context: Context) -> int:
    """Print the settings as text or JSON."""
    if args.markdown:
        print(markdown_table())
        return EXIT_OK
    try:
        loaded = load_settings(config_path=args.config, config_origin="--config")
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    docs = field_docs()
    values = msgspec.structs.asdict(loaded.settings)
    in_use = resolve_paths(loaded.settings).in_use()
    secrets = secret_fields()
    rows: dict[str, dict[str, Any]] = {}
    for name, value in values.items():
        if name in secrets and value and not args.show_secrets:
            value = "********"  # keep tokens off screens and logs unless asked for
        rows[name] = {"value": value, "source": loaded.sources[name], "doc": docs[name]}
        if name in in_use:  # "" says "the platform default": say which folder that is
            rows[name]["in_use"] = str(in_use[name])
    if args.json:
        print(json.dumps({"config_path": str(loaded.config_path), "settings": rows}, indent=2))
        return EXIT_OK
    found = "" if loaded.config_path.is_file() else " (not found, using defaults)"
    print(f"Config file: {loaded.config_path}{found}\n")
    for name, row in rows.items():
        print(f"{name} = {json.dumps(row['value'])}  [{row['source']}]")
        print(f"    {row['doc']}")
        if not row["value"] and "in_use" in row:
            print(f"    In use: {row['in_use']}")
    return EXIT_OK
