"""The database file: pragmas, permissions, migrations, integrity."""

from __future__ import annotations

import os
import sqlite3
import stat
import threading
from pathlib import Path

import pytest

from impasto.store import Database, DatabaseError, JobStore, open_database
from impasto.store.db import WAL_SIZE_LIMIT, Migration, load_migrations, split_statements


def test_open_creates_parent_dir_and_private_file(db: Database, db_path: Path) -> None:
    assert db_path.parent.is_dir()
    if os.name == "posix":
        assert stat.S_IMODE(db_path.stat().st_mode) == 0o600
        JobStore(db).create({}, model="m", prompt="p")
        wal = db_path.with_name(db_path.name + "-wal")
        assert wal.exists()
        assert stat.S_IMODE(wal.stat().st_mode) == 0o600


def test_existing_file_is_made_private(tmp_path: Path) -> None:
    path = tmp_path / "loose.db"
    path.touch(mode=0o644)
    os.chmod(path, 0o644)
    open_database(path).close()
    if os.name == "posix":
        assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_pragmas(db: Database) -> None:
    assert db.execute("PRAGMA journal_mode")[0][0] == "wal"
    assert db.execute("PRAGMA synchronous")[0][0] == 1  # NORMAL
    assert db.execute("PRAGMA foreign_keys")[0][0] == 1
    assert db.execute("PRAGMA busy_timeout")[0][0] > 0


def test_migrations_found_as_package_resources_and_applied(db: Database) -> None:
    migrations = load_migrations()
    assert [m.version for m in migrations] == list(range(1, len(migrations) + 1))
    assert migrations[0].name == "0001_init.sql"
    assert db.user_version == migrations[-1].version
    tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"jobs", "events"} <= tables


def test_reopen_is_idempotent_and_keeps_data(db_path: Path) -> None:
    first = open_database(db_path)
    job, _ = JobStore(first).create({"x": 1}, model="m", prompt="p")
    version = first.user_version
    first.close()
    second = open_database(db_path)
    assert second.user_version == version
    stored = JobStore(second).get(job.id)
    assert stored is not None and stored.request == {"x": 1}
    second.close()


def test_later_migration_applies_on_reopen(db_path: Path) -> None:
    base = load_migrations()
    open_database(db_path).close()
    extra = Migration(len(base) + 1, "0099_extra.sql", "CREATE TABLE extra (x INTEGER);\n")
    db = open_database(db_path, migrations=[*base, extra])
    assert db.user_version == len(base) + 1
    db.execute("INSERT INTO extra (x) VALUES (1)")
    db.close()


def test_failed_migration_rolls_back_entirely(db_path: Path) -> None:
    broken = Migration(1, "0001_broken.sql", "CREATE TABLE a (x);\nCREATE TABLE a (x);\n")
    with pytest.raises(DatabaseError, match=r"0001_broken\.sql"):
        open_database(db_path, migrations=[broken])
    raw = sqlite3.connect(db_path)
    assert raw.execute("PRAGMA user_version").fetchone()[0] == 0
    assert raw.execute("SELECT COUNT(*) FROM sqlite_master WHERE name = 'a'").fetchone()[0] == 0
    raw.close()


def test_newer_schema_is_refused_with_advice(db_path: Path) -> None:
    open_database(db_path).close()
    raw = sqlite3.connect(db_path)
    raw.execute("PRAGMA user_version = 999")
    raw.close()
    with pytest.raises(DatabaseError, match="upgrade Impasto") as refused:
        open_database(db_path)
    # The message names the file, so a user with several data folders knows which one.
    assert str(db_path) in str(refused.value)


def test_a_current_version_missing_a_column_is_refused_and_kept(db_path: Path) -> None:
    """A file changed by hand: its version says current, but every query naming the column
    would fail (500s from a daemon that started). Refused at open, the file left alone."""
    database = open_database(db_path)
    JobStore(database).create({}, model="m", prompt="kept")
    database.close()
    raw = sqlite3.connect(db_path)
    raw.execute("ALTER TABLE jobs DROP COLUMN plan")
    raw.close()
    with pytest.raises(DatabaseError, match=r"lacks jobs\.plan .*changed by hand"):
        open_database(db_path)
    raw = sqlite3.connect(db_path)
    assert raw.execute("SELECT prompt FROM jobs").fetchall() == [("kept",)]
    raw.close()
    assert not list(db_path.parent.glob("*.corrupt-*"))


def test_migration_numbers_must_have_no_gaps(tmp_path: Path) -> None:
    (tmp_path / "0001_a.sql").write_text("SELECT 1;")
    (tmp_path / "0003_c.sql").write_text("SELECT 1;")
    with pytest.raises(DatabaseError, match="out of sequence"):
        load_migrations(tmp_path)


def test_split_statements_keeps_trigger_bodies_whole() -> None:
    script = (
        "-- comment\nCREATE TABLE t (x);\n"
        "CREATE TRIGGER tr AFTER INSERT ON t BEGIN\n  UPDATE t SET x = 1;\n  SELECT 2;\nEND;\n"
    )
    statements = split_statements(script)
    assert len(statements) == 2
    assert statements[1].startswith("CREATE TRIGGER") and statements[1].endswith("END;")


def test_integrity_check_ok(db: Database) -> None:
    JobStore(db).create({}, model="m", prompt="p")
    assert db.integrity_check() == "ok"


def test_transaction_rolls_back_on_error(db: Database) -> None:
    with pytest.raises(RuntimeError), db.transaction() as conn:
        conn.execute("INSERT INTO events (type, job_id, data, time) VALUES ('x', NULL, '{}', 0)")
        raise RuntimeError("boom")
    assert db.execute("SELECT COUNT(*) FROM events")[0][0] == 0


def test_one_database_shared_by_threads(db: Database) -> None:
    store = JobStore(db)
    errors: list[BaseException] = []

    def submit() -> None:
        try:
            for _ in range(50):
                store.create({}, model="m", prompt="p")
        except BaseException as exc:  # collected for the main thread's assertion
            errors.append(exc)

    threads = [threading.Thread(target=submit) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert store.count_queued() == 200


def test_two_openers_on_a_new_file_migrate_once(db_path: Path) -> None:
    results: list[Database] = []
    errors: list[BaseException] = []

    def opener() -> None:
        try:
            results.append(open_database(db_path))
        except BaseException as exc:  # collected for the main thread's assertion
            errors.append(exc)

    threads = [threading.Thread(target=opener) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert all(database.user_version == len(load_migrations()) for database in results)
    for database in results:
        database.close()


def _aside(db_path: Path) -> list[Path]:
    return sorted(db_path.parent.glob(f"{db_path.name}.corrupt-*"))


def test_a_file_that_is_not_a_database_is_moved_aside(
    db_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db_path.parent.mkdir(parents=True)
    garbage = os.urandom(64 * 1024)
    db_path.write_bytes(garbage)
    with caplog.at_level("WARNING"):
        db = open_database(db_path)
    [aside] = _aside(db_path)
    assert aside.read_bytes() == garbage  # kept, for whoever wants to look
    assert str(aside) in caplog.text and "file is not a database" in caplog.text
    job, _ = JobStore(db).create({"x": 1}, model="m", prompt="p")  # a working new one
    assert JobStore(db).get(job.id) is not None
    db.close()


def test_damaged_pages_are_found_at_open_not_mid_job(
    db_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = open_database(db_path)
    store = JobStore(db)
    for i in range(200):
        store.create({"x": i, "pad": "y" * 500}, model="m", prompt=f"p{i}")
    db.close()
    assert db_path.stat().st_size > 30 * 4096
    with db_path.open("r+b") as fh:  # a run of 0xFF over a table page, as a bad sector
        fh.seek(20 * 4096 + 100)
        fh.write(b"\xff" * 3000)
    damaged = db_path.read_bytes()
    with caplog.at_level("WARNING"):
        db = open_database(db_path)
    [aside] = _aside(db_path)
    assert aside.read_bytes() == damaged
    assert "damaged:" in caplog.text and "\n" not in caplog.records[-1].getMessage()
    assert JobStore(db).list_active() == []  # the new file starts empty
    db.close()


def test_without_recovery_a_damaged_file_is_an_error_naming_it(db_path: Path) -> None:
    db_path.parent.mkdir(parents=True)
    db_path.write_bytes(b"not sqlite at all" * 100)
    with pytest.raises(DatabaseError, match="is damaged") as caught:
        open_database(db_path, recover=False)
    assert str(db_path) in str(caught.value)
    assert _aside(db_path) == [] and db_path.read_bytes() == b"not sqlite at all" * 100


def test_the_wal_file_shrinks_back_after_a_big_transaction(db: Database, db_path: Path) -> None:
    # One big write (a clear of a long queue) grows the WAL; later small writes, once a
    # checkpoint has run, cut it back instead of keeping that size for the daemon's life.
    row = '"' + "x" * 4000 + '"'
    with db.transaction() as conn:
        conn.executemany(
            "INSERT INTO jobs (id, status, priority, request, model, prompt, total_steps,"
            " created_at, updated_at) VALUES (?, 'queued', 0, ?, 'm', 'p', 1, 0, 0)",
            [(f"j{i}", row) for i in range(4000)],
        )
    wal = Path(f"{db_path}-wal")
    assert wal.stat().st_size > WAL_SIZE_LIMIT
    for step in range(1200):  # past the automatic checkpoint (1,000 pages)
        db.execute("UPDATE jobs SET priority = ? WHERE id = 'j1'", (step,))
    assert wal.stat().st_size <= WAL_SIZE_LIMIT
