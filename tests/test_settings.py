"""Settings: precedence of the four sources, errors that name the key, and docs kept in sync."""

from __future__ import annotations

import re
from pathlib import Path

import msgspec
import pytest

from impasto.paths import resolve_paths
from impasto.settings import ENV_PREFIX, Settings, field_docs, markdown_table
from impasto.settings_load import load_settings

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
        (b"\xff\xfeport = 1\n", "line 1 is not UTF-8"),
        (b"port = 1\n# caf\xe9\n", "line 2 is not UTF-8"),
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
        ("port", "70000", "Allowed: 0-65535."),
        ("port", "-1", "Allowed: 0-65535."),
        ("workers", "-3", "Allowed: 0-64."),
        ("max_queue", "0", "Allowed: >= 1."),
        ("max_attempts", "0", "Allowed: 1-100."),
        ("keep_alive", "nan", "Allowed: 0-604800."),
        ("keep_alive", "inf", "Allowed: 0-604800."),
        ("preview_every", "-2", "Allowed: >= 0."),
        ("max_upload_size", "0", "Allowed: >= 1."),
        ("rate_limit", "-1", "Allowed: >= 0."),
        ("log_level", "bogus", "debug, info, warning, error"),
        ("hf_endpoint", "hub.local", "http:// or https:// URL"),
        ("cluster", "ray:/10.0.0.1:10001", "HOST:PORT"),
        ("cluster", "ray://head.internal:10001", "cannot carry the workers' message streams"),
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


@pytest.mark.parametrize("address", ["auto", "127.0.0.1:6379", "head.internal:6379", "[::1]:6379"])
def test_the_cluster_address_forms_of_the_docs_load(tmp_path: Path, address: str) -> None:
    settings = load_settings(
        env={ENV_PREFIX + "CLUSTER": address}, config_path=tmp_path / "none.toml"
    ).settings
    assert settings.cluster == address


def test_the_docs_table_states_each_range() -> None:
    table = markdown_table()
    assert "TCP port of the HTTP server (0 picks a free port). Allowed: 0-65535." in table
    assert "Allowed: 0-604800." in table  # keep_alive, as the API's keep_alive


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        *[(word, True) for word in ("1", " TRUE ", "Yes", "on")],
        *[(word, False) for word in ("0", "false", " NO", "Off ")],
    ],
)
def test_env_booleans_take_the_documented_words(tmp_path: Path, raw: str, expected: bool) -> None:
    env = {"IMPASTO_SOCKET": raw}
    assert load_settings(env=env, config_path=tmp_path / "none.toml").settings.socket is expected


@pytest.mark.parametrize("raw", ["ture", "", "2", "enabled"])
def test_an_unknown_env_boolean_is_refused_naming_the_variable(tmp_path: Path, raw: str) -> None:
    with pytest.raises(ValueError, match=r"'socket' from environment \(IMPASTO_SOCKET\)"):
        load_settings(env={"IMPASTO_SOCKET": raw}, config_path=tmp_path / "none.toml")


@pytest.mark.parametrize(
    ("var", "raw", "words"),
    [
        ("IMPASTO_PORT", "eighty", "'eighty' is not an integer. Allowed: 0-65535."),
        ("IMPASTO_PORT", "70000", "'70000' is out of range. Allowed: 0-65535."),
        ("IMPASTO_KEEP_ALIVE", "soon", "'soon' is not a number. Allowed: 0-604800."),
    ],
)
def test_a_bad_env_value_names_its_variable_and_the_rule(
    tmp_path: Path, var: str, raw: str, words: str
) -> None:
    # msgspec's "Expected `int`, got `str` - at `$.port`" was the message, without the variable.
    key = var.removeprefix("IMPASTO_").lower()
    with pytest.raises(ValueError) as raised:
        load_settings(env={var: raw}, config_path=tmp_path / "none.toml")
    assert str(raised.value) == f"setting {key!r} from environment ({var}): {words}"


def test_a_config_value_of_another_type_says_which_type(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('allowed_origins = 3\nport = "x"\n')
    with pytest.raises(ValueError, match=r"'allowed_origins' from config .*: 3 is not a list\.$"):
        load_settings(env={}, config_path=config, config_origin="--config")


def test_env_numbers_may_have_surrounding_spaces(tmp_path: Path) -> None:
    env = {"IMPASTO_PORT": " 8081 ", "IMPASTO_KEEP_ALIVE": "\t60\n"}
    s = load_settings(env=env, config_path=tmp_path / "none.toml").settings
    assert (s.port, s.keep_alive) == (8081, 60.0)


PATH_SETTINGS = ["data_dir", "runtime_dir", "log_dir", "output_dir", "models_dir", "temp_dir"]


def test_path_settings_expand_home_and_become_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home, work, conf = tmp_path / "home", tmp_path / "work", tmp_path / "conf"
    for folder in (home, work, conf):
        folder.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(work)
    config = conf / "config.toml"
    config.write_text('data_dir = "~/impasto-x"\nlog_dir = "logs"\ninstall_roots = ["~/m", "m"]\n')
    env = {ENV_PREFIX + "RUNTIME_DIR": "rt", ENV_PREFIX + "MODELS_DIR": "~/models"}
    cli = {"socket_path": "rt/impasto.sock", "temp_dir": "~/t"}
    s = load_settings(cli, env=env, config_path=config).settings
    assert s.data_dir == str(home / "impasto-x")
    assert s.log_dir == str(conf / "logs")  # the config file's folder
    assert s.install_roots == [str(home / "m"), str(conf / "m")]
    assert s.runtime_dir == str(work / "rt")  # the working directory
    assert s.models_dir == str(home / "models")
    assert (s.socket_path, s.temp_dir) == (str(work / "rt" / "impasto.sock"), str(home / "t"))
    assert s.output_dir == ""  # unset stays the platform default


@pytest.mark.parametrize("value", ["5", "[1, 2]", '"x"', "{ prompt_filter = 3 }"])
def test_a_plugins_key_that_is_not_a_table_of_tables_is_refused(tmp_path: Path, value: str) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f"plugins = {value}\n")
    with pytest.raises(ValueError) as raised:
        load_settings(env={}, config_path=config)
    message = str(raised.value)
    assert "'plugins" in message and str(config) in message and "must be a table" in message


@pytest.mark.parametrize("command", ["config", "serve"])
def test_both_commands_refuse_a_bad_plugins_key_with_exit_2(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    command: str,
) -> None:
    from impasto.cli.main import main

    config = tmp_path / "config.toml"
    config.write_text("plugins = 5\n")
    monkeypatch.setenv(ENV_PREFIX + "CONFIG", str(config))
    assert main([command]) == 2
    err = capsys.readouterr().err
    assert "'plugins'" in err and str(config) in err and "must be a table" in err


def test_a_config_file_named_by_flag_must_exist(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from impasto.cli.main import main

    monkeypatch.delenv(ENV_PREFIX + "CONFIG", raising=False)
    for named in (tmp_path / "typo.toml", tmp_path):
        for command in ("config", "serve"):
            assert main([command, "--config", str(named)]) == 2
            err = capsys.readouterr().err
            assert str(named) in err and "--config" in err


def test_a_config_file_named_by_env_must_be_a_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"from IMPASTO_CONFIG\) is a directory"):
        load_settings(env={ENV_PREFIX + "CONFIG": str(tmp_path)})


def test_only_the_default_config_location_may_be_absent(tmp_path: Path) -> None:
    assert load_settings(env={}, config_path=tmp_path / "none.toml").settings == Settings()


def test_a_missing_model_catalog_is_refused(tmp_path: Path) -> None:
    env = {ENV_PREFIX + "MODEL_CATALOG": str(tmp_path / "catalog.toml")}
    with pytest.raises(
        ValueError, match=r"'model_catalog' from environment \(IMPASTO_MODEL_CATALOG\): .*does not"
    ):
        load_settings(env=env, config_path=tmp_path / "none.toml")
    (tmp_path / "catalog.toml").write_text("")
    assert load_settings(env=env, config_path=tmp_path / "none.toml").settings.model_catalog
