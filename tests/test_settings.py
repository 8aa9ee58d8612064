"""Settings: precedence of the four sources, errors that name the key, and docs kept in sync."""

from __future__ import annotations

import re
from pathlib import Path

import msgspec
import pytest

from impasto.paths import resolve_paths
from impasto.settings import ENV_PREFIX, Settings, field_docs, load_settings, markdown_table

DOCS = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"


def test_precedence_defaults_file_env_cli(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('port = 9001\nkeep_alive = 60\nhost = "127.0.0.1"\n')
    env = {"IMPASTO_PORT": "9002", "IMPASTO_KEEP_ALIVE": "30"}
    loaded = load_settings({"port": 9003}, env=env, config_path=config)
    s = loaded.settings
    assert (s.port, s.keep_alive, s.host, s.workers) == (9003, 30.0, "127.0.0.1", 0)
    assert loaded.sources["port"] == "command line"
    assert loaded.sources["keep_alive"] == "environment"
    assert loaded.sources["host"].startswith("config file")
    assert loaded.sources["workers"] == "default"


def test_env_lists_and_booleans(tmp_path: Path) -> None:
    env = {"IMPASTO_ALLOWED_HOSTS": "a.local, b.local", "IMPASTO_SOCKET": "off"}
    s = load_settings(env=env, config_path=tmp_path / "none.toml").settings
    assert s.allowed_hosts == ["a.local", "b.local"] and s.socket is False


@pytest.mark.parametrize(
    ("env", "words"),
    [
        ({"IMPASTO_PORT": "eighty"}, ["port", "environment"]),
        ({"IMPASTO_KEEP_ALIVE": "soon"}, ["keep_alive"]),
    ],
)
def test_bad_values_name_the_key_and_source(
    tmp_path: Path, env: dict[str, str], words: list[str]
) -> None:
    with pytest.raises(ValueError) as info:
        load_settings(env=env, config_path=tmp_path / "none.toml")
    assert all(w in str(info.value) for w in words)


def test_unknown_config_key_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text("prot = 1\n")
    with pytest.raises(ValueError, match=r"unknown setting.*prot"):
        load_settings(env={}, config_path=config)


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"port = 1\n[plugins\n", "Expected ']'"),
        (b"\xff\xfeport = 1\n", "utf-8"),
    ],
)
def test_an_unreadable_config_file_is_named(tmp_path: Path, content: bytes, words: str) -> None:
    config = tmp_path / "config.toml"
    config.write_bytes(content)
    with pytest.raises(ValueError) as info:
        load_settings(env={}, config_path=config)
    assert str(info.value).startswith(f"{config}: not valid TOML: ") and words in str(info.value)


def test_client_commands_report_unreadable_settings_in_one_line(
    broken_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from impasto.cli.main import main

    assert main(["status"]) == 2  # a bad setting is a usage error, as for `impasto config`
    err = capsys.readouterr().err
    assert err.startswith(f"error: cannot tell where the daemon is: {broken_config}: not valid")
    assert len(err.splitlines()) == 1


def test_every_field_has_a_doc_and_is_in_the_docs() -> None:
    docs = field_docs()
    text = DOCS.read_text()
    for field in msgspec.structs.fields(Settings):
        assert docs[field.name], f"setting {field.name} has no one-line doc"
        row = f"| `{field.name}` | `{ENV_PREFIX}{field.name.upper()}` |"
        assert row in text, f"docs/configuration.md lacks {field.name}"
        assert docs[field.name] in text, f"docs/configuration.md has a stale doc for {field.name}"
    assert markdown_table() in text, "regenerate the table: impasto config --markdown"
    documented = set(re.findall(r"^\| `(\w+)` \| `IMPASTO_", text, re.M))
    assert documented == {f.name for f in msgspec.structs.fields(Settings)}


def test_paths_follow_settings(tmp_path: Path) -> None:
    s = Settings(data_dir=str(tmp_path / "d"), runtime_dir=str(tmp_path / "r"))
    paths = resolve_paths(s)
    assert paths.database == tmp_path / "d" / "impasto.db"
    assert paths.output_dir == tmp_path / "d" / "outputs"
    assert paths.socket == tmp_path / "r" / "impasto.sock"
    paths.create()
    assert (tmp_path / "r").stat().st_mode & 0o777 == 0o700


# Numbers with no natural bound above (sizes, counts) need only a floor; the rest have both.
UNBOUNDED_ABOVE = {
    "max_file_size",
    "max_upload_size",
    "max_body_size",
    "max_queue",
    "rate_limit",
    "preview_every",
    "max_connections",
    "max_event_streams",
    "cluster_cache_size",
}


def _numeric_fields() -> list[msgspec.inspect.Field]:
    info = msgspec.inspect.type_info(Settings)
    assert isinstance(info, msgspec.inspect.StructType)
    return [
        f
        for f in info.fields
        if isinstance(f.type, msgspec.inspect.Metadata)
        and isinstance(f.type.type, msgspec.inspect.IntType | msgspec.inspect.FloatType)
    ]


def test_every_numeric_setting_is_bounded() -> None:
    """A new number without bounds fails here: -1 workers or a port of 70000 must not load."""
    fields = _numeric_fields()
    assert {f.name for f in fields} >= {"port", "workers", "keep_alive", "max_attempts"}
    for f in fields:
        kind = f.type.type
        assert kind.ge is not None, f.name
        assert kind.le is not None or f.name in UNBOUNDED_ABOVE, f.name


@pytest.mark.parametrize(
    ("key", "value", "words"),
    [
        ("port", "70000", "<= 65535"),
        ("port", "-1", ">= 0"),
        ("workers", "-3", ">= 0"),
        ("max_queue", "0", ">= 1"),
        ("max_attempts", "0", ">= 1"),
        ("keep_alive", "nan", ">= 0"),
        ("keep_alive", "inf", "<= 604800"),
        ("preview_every", "-2", ">= 0"),
        ("max_upload_size", "0", ">= 1"),
        ("rate_limit", "-1", ">= 0"),
        ("log_level", "bogus", "debug, info, warning, error"),
        ("hf_endpoint", "hub.local", "http:// or https:// URL"),
        ("cluster", "ray:/10.0.0.1:10001", "ray://HOST:PORT"),
        ("cluster", "10.0.0.1", "HOST:PORT"),
        ("cluster", "head:port", "HOST:PORT"),
        ("cluster", "head:70000", "HOST:PORT"),
        ("cluster", "http://head:8265", "HOST:PORT"),
        ("cluster", "Auto", "auto"),
    ],
)
def test_out_of_range_values_are_refused_with_the_allowed_range(
    tmp_path: Path, key: str, value: str, words: str
) -> None:
    with pytest.raises(ValueError) as raised:
        load_settings(env={ENV_PREFIX + key.upper(): value}, config_path=tmp_path / "none.toml")
    assert key in str(raised.value) and words in str(raised.value)


@pytest.mark.parametrize(
    "address", ["auto", "127.0.0.1:6379", "ray://head.internal:10001", "ray://[::1]:10001"]
)
def test_the_cluster_address_forms_of_the_docs_load(tmp_path: Path, address: str) -> None:
    settings = load_settings(
        env={ENV_PREFIX + "CLUSTER": address}, config_path=tmp_path / "none.toml"
    ).settings
    assert settings.cluster == address


def test_the_docs_table_states_each_range() -> None:
    table = markdown_table()
    assert "TCP port of the HTTP server (0 picks a free port). Allowed: 0-65535." in table
    assert "Allowed: 0-604800." in table  # keep_alive, as the API's keep_alive
