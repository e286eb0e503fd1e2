"""admin-generator: the system generator Brokkr v1 clients look up at start."""

from __future__ import annotations

import threading
from collections.abc import Callable

import psycopg
import pytest

from brokkr.broker import bootstrap, pak
from tests.integration.broker import in_process, settings_for

pytestmark = pytest.mark.postgres


def admin_generators(database_url: str) -> list[tuple[str, bool, bool]]:
    """(name, is_system, live) of every row named admin-generator."""
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT name, is_system, deleted_at IS NULL FROM generators"
            " WHERE name = 'admin-generator' ORDER BY created_at"
        ).fetchall()
    return [(r[0], r[1], r[2]) for r in rows]


def all_at_once(count: int, work: Callable[[], object]) -> list[BaseException]:
    """Run `work` in `count` threads released together; return their exceptions."""
    barrier = threading.Barrier(count)
    errors: list[BaseException] = []

    def run() -> None:
        barrier.wait()
        try:
            work()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return errors


def test_a_fresh_broker_has_it_and_a_v1_client_can_use_it(database_url: str):
    with in_process(database_url) as api:
        listed = api.get("/generators").json()
        found = [g for g in listed if g["name"] == "admin-generator"]
        assert len(found) == 1, listed
        assert found[0]["is_system"] is True
        # What a v1 client does next: a stack for admin-generator with the admin PAK.
        created = api.post("/stacks", json={"name": "s", "generator_id": found[0]["id"]})
        assert created.status_code == 201, created.text


def test_existing_database_gets_it_on_upgrade_and_restarts_add_no_second(database_url: str):
    with psycopg.connect(database_url) as conn:  # data from before the upgrade
        conn.execute("INSERT INTO generators (name, pak_hash) VALUES ('old', 'x')")
    settings = settings_for(database_url, pak.generate().hash)
    for _ in range(3):
        bootstrap.ensure_admin(settings.database.conninfo(), settings.broker)
    assert admin_generators(database_url) == [("admin-generator", True, True)]


def test_brokers_starting_together_create_one(database_url: str):
    settings = settings_for(database_url, pak.generate().hash)
    errors = all_at_once(
        8, lambda: bootstrap.ensure_admin(settings.database.conninfo(), settings.broker)
    )
    assert not errors
    assert admin_generators(database_url) == [("admin-generator", True, True)]


def test_the_unique_index_alone_prevents_a_second_row(database_url: str):
    """Without the advisory lock, concurrent inserts still leave one live row."""

    def insert() -> None:
        with psycopg.connect(database_url) as conn, conn.transaction():
            bootstrap.ensure_admin_generator(conn)

    assert not all_at_once(8, insert)
    assert admin_generators(database_url) == [("admin-generator", True, True)]


def test_no_pak_authenticates_as_it_and_a_deleted_one_stays_deleted(database_url: str):
    with in_process(database_url) as api:
        with psycopg.connect(database_url) as conn:
            row = conn.execute(
                "SELECT id, pak_hash FROM generators WHERE name = 'admin-generator'"
            ).fetchone()
        assert row is not None and not pak.is_valid_hash(row[1])
        assert api.delete(f"/generators/{row[0]}").status_code == 204
    settings = settings_for(database_url, pak.generate().hash)
    bootstrap.ensure_admin(settings.database.conninfo(), settings.broker)
    assert admin_generators(database_url) == [("admin-generator", True, False)]
