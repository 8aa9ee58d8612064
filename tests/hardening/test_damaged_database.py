"""Files the daemon reads at start, damaged: a database SQLite cannot read (the daemon starts on
a new one and says where the old one went), a schema from a newer Impasto and a model catalog
that is not TOML (each stops it with one line of advice)."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from tests.harness import TINY, Daemon, wait_status


def test_a_daemon_on_a_garbage_database_starts_on_a_new_one(
    daemon_factory: type[Daemon], tmp_path: Path
) -> None:
    daemon = daemon_factory(tmp_path / "d")
    daemon.data_dir.mkdir(parents=True)
    garbage = os.urandom(32 * 1024)
    (daemon.data_dir / "impasto.db").write_bytes(garbage)
    daemon.start()
    [aside] = daemon.data_dir.glob("impasto.db.corrupt-*")
    assert aside.read_bytes() == garbage
    log = (daemon.log_dir / "daemon.log").read_text()
    assert f"moved it to {aside}" in log and "file is not a database" in log
    with daemon.client() as client:
        job = client.post("/api/v1/generate", json={"prompt": "after", **TINY}).json()
        assert wait_status(client, job["id"], {"completed", "failed"})["status"] == "completed"


def test_a_newer_schema_stops_the_daemon_with_advice_not_a_traceback(
    daemon_factory: type[Daemon], tmp_path: Path
) -> None:
    daemon = daemon_factory(tmp_path / "d")
    daemon.data_dir.mkdir(parents=True)
    database = sqlite3.connect(daemon.data_dir / "impasto.db")
    database.execute("PRAGMA user_version = 999")
    database.close()
    result = daemon.refused()
    assert result.returncode == 1
    database_path = daemon.data_dir / "impasto.db"
    assert f"impasto: the database {database_path} has schema version 999" in result.stderr
    assert "Traceback" not in result.stderr
    assert not list(daemon.data_dir.glob("impasto.db.corrupt-*"))  # readable: kept in place


def test_a_broken_model_catalog_stops_the_daemon_naming_it(
    daemon_factory: type[Daemon], tmp_path: Path
) -> None:
    catalog = tmp_path / "catalog.toml"
    catalog.write_text("[[broken]\n")
    daemon = daemon_factory(tmp_path / "d")
    daemon.root.mkdir(parents=True)
    result = daemon.refused(IMPASTO_MODEL_CATALOG=str(catalog))
    assert result.returncode == 1
    assert f"impasto: model_catalog: {catalog}: not valid TOML" in result.stderr
    assert "Traceback" not in result.stderr
