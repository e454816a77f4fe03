"""The SQLite database: one connection per thread, writes that take turns, nested transactions."""

from __future__ import annotations

import threading

import pytest

from guard.errors import StoreError
from guard.storage import Database


@pytest.fixture
def database(tmp_path):
    db = Database(tmp_path / "catalog.sqlite")
    yield db
    db.close()


def _in_thread(work, timeout: float = 20.0):
    """Run ``work()`` in a new thread and return its result (or raise what it raised)."""
    outcome = {}

    def target():
        try:
            outcome["result"] = work()
        except BaseException as exc:  # noqa: BLE001 — handed to the test
            outcome["error"] = exc

    thread = threading.Thread(target=target)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), "the thread did not finish"
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]


def _probe(db: Database) -> list[tuple]:
    return db.query("SELECT value FROM meta WHERE key = 'probe'")


def test_another_thread_reads_while_a_write_is_open_and_sees_only_committed_rows(database):
    with database.transaction() as db:
        db.execute("INSERT INTO meta VALUES ('probe', 'written')")
        assert _probe(database) == [("written",)], "the writing thread sees its own write"
        assert _in_thread(lambda: _probe(database)) == [], "a reader neither waits nor sees uncommitted rows"
    assert _in_thread(lambda: _probe(database)) == [("written",)]


def test_each_thread_has_its_own_connection_and_ended_threads_give_theirs_back(database):
    mine = database._connection()
    theirs = _in_thread(database._connection)
    assert theirs is not mine and database._connection() is mine
    assert database.connections() == 2
    _in_thread(lambda: database.query("SELECT 1"))  # opening a new one closes the ended thread's
    assert database.connections() == 2


def test_writes_of_many_threads_take_turns_without_losing_any(database):
    with database.transaction() as db:
        db.execute("INSERT INTO meta VALUES ('counter', '0')")

    def add(times: int) -> None:
        for _ in range(times):
            with database.transaction() as db:
                (value,) = db.execute("SELECT value FROM meta WHERE key = 'counter'").fetchone()
                db.execute("UPDATE meta SET value = ? WHERE key = 'counter'", (str(int(value) + 1),))

    threads = [threading.Thread(target=add, args=(50,)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert database.query("SELECT value FROM meta WHERE key = 'counter'") == [("200",)]


def test_a_failed_inner_transaction_undoes_only_its_own_writes(database):
    with database.transaction() as db:
        db.execute("INSERT INTO meta VALUES ('outer', '1')")
        with pytest.raises(RuntimeError):
            with database.transaction() as inner:
                inner.execute("INSERT INTO meta VALUES ('inner', '1')")
                raise RuntimeError("undo me")
        with database.transaction() as inner:
            inner.execute("INSERT INTO meta VALUES ('kept', '1')")
        assert _in_thread(lambda: database.query("SELECT key FROM meta WHERE key = 'kept'")) == [], \
            "nothing commits before the outermost block ends"
    keys = {k for (k,) in database.query("SELECT key FROM meta WHERE key IN ('outer', 'inner', 'kept')")}
    assert keys == {"outer", "kept"}


def test_a_failed_transaction_leaves_nothing_and_the_connection_usable(database):
    with pytest.raises(RuntimeError):
        with database.transaction() as db:
            db.execute("INSERT INTO meta VALUES ('probe', 'x')")
            raise RuntimeError("fail")
    assert _probe(database) == []
    with database.transaction() as db:
        db.execute("INSERT INTO meta VALUES ('probe', 'y')")
    assert _probe(database) == [("y",)]


def test_close_closes_every_thread_connection_and_later_use_is_a_store_error(tmp_path):
    database = Database(tmp_path / "catalog.sqlite")
    theirs = _in_thread(database._connection)
    database.close()
    assert database.connections() == 0
    with pytest.raises(Exception, match="closed"):
        theirs.execute("SELECT 1")
    with pytest.raises(StoreError, match="the catalog is closed"):
        database.query("SELECT 1")
    with pytest.raises(StoreError, match="the catalog is closed"):
        _in_thread(lambda: database.query("SELECT 1"))


def test_foreign_keys_and_wal_are_on_for_every_connection(database):
    assert database.query("PRAGMA journal_mode") == [("wal",)]
    assert _in_thread(lambda: database.query("PRAGMA foreign_keys")) == [(1,)]
    assert _in_thread(lambda: database.query("PRAGMA busy_timeout")) == [(10_000,)]
