"""Creating deployment objects while their stack is deleted, on a real broker process
and PostgreSQL: each object is created before the deletion marker, or refused with
404; nothing is ever written after the marker.

The interleavings are forced, not hoped for: a trigger in the test database makes
one kind of insert (objects, or the marker) wait for an advisory lock the test
holds, and the test releases it once PostgreSQL shows the other requests waiting.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import httpx
import psycopg
import pytest

from brokkr_dev.local.services import LocalBroker
from tests.fixtures.broker import AdminBroker, StartBroker

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

CREATES = 4
HOLD_MARKER, HOLD_OBJECTS = 4242, 4243
GATES = f"""
CREATE FUNCTION test_gate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_advisory_xact_lock_shared(
    CASE WHEN NEW.is_deletion_marker THEN {HOLD_MARKER} ELSE {HOLD_OBJECTS} END);
  RETURN NEW;
END $$;
CREATE TRIGGER test_gate BEFORE INSERT ON deployment_objects
  FOR EACH ROW EXECUTE FUNCTION test_gate();
"""
YAML = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n"


@pytest.fixture
def broker(database_url: str, start_broker: StartBroker) -> AdminBroker:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(GATES)
    return start_broker({"database": {"pool_timeout": 30}})


class Race:
    """Requests in threads against one stack, and what PostgreSQL says they wait for."""

    def __init__(self, process: LocalBroker, admin: str, database_url: str) -> None:
        self.base = process.url + "/api/v1"
        self.headers = {"Authorization": admin}
        self.database_url = database_url
        self.watch = psycopg.connect(database_url, autocommit=True)
        with httpx.Client(base_url=self.base, headers=self.headers, timeout=120) as http:
            generator = http.post("/generators", json={"name": "g"}).json()["generator"]["id"]
            # One upload first: it starts the YAML worker, which may take long on a
            # loaded machine, outside the waits below.
            warm = http.post("/stacks", json={"name": "warm", "generator_id": generator})
            path = f"/stacks/{warm.json()['id']}/deployment-objects"
            assert http.post(path, content=YAML).status_code == 201
            stack = http.post("/stacks", json={"name": "s", "generator_id": generator})
            self.stack = stack.json()["id"]
        self.threads: list[threading.Thread] = []
        self.creates: list[int] = []
        self.deletes: list[int] = []

    def _run(self, work: Callable[[httpx.Client], None]) -> None:
        def run() -> None:
            with httpx.Client(base_url=self.base, headers=self.headers, timeout=120) as http:
                work(http)

        thread = threading.Thread(target=run)
        thread.start()
        self.threads.append(thread)

    def create(self) -> None:
        path = f"/stacks/{self.stack}/deployment-objects"
        self._run(lambda http: self.creates.append(http.post(path, content=YAML).status_code))

    def delete(self) -> None:
        self._run(
            lambda http: self.deletes.append(http.delete(f"/stacks/{self.stack}").status_code)
        )

    def waiting(self, *events: str) -> int:
        row = self.watch.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND wait_event_type = 'Lock' AND wait_event = ANY(%s)",
            (list(events),),
        ).fetchone()
        return int(row[0]) if row else 0

    def wait_for(self, condition: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + 120  # a bound for a loaded machine, not a sleep
        while not condition():
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            time.sleep(0.02)  # polling PostgreSQL's view of the waiters

    def join(self) -> None:
        for thread in self.threads:
            thread.join(60)

    def objects(self) -> list[tuple[int, bool]]:
        """(sequence_id, is_deletion_marker) of the stack's objects, in order."""
        rows = self.watch.execute(
            "SELECT sequence_id, is_deletion_marker FROM deployment_objects"
            " WHERE stack_id = %s ORDER BY sequence_id",
            (self.stack,),
        ).fetchall()
        return [(int(r[0]), bool(r[1])) for r in rows]


ROW_LOCK = ("transactionid", "tuple")


def test_creates_that_hold_the_stack_first_land_before_the_marker(
    broker: AdminBroker, database_url: str
):
    process, admin = broker
    race = Race(process, admin, database_url)
    race.watch.execute("SELECT pg_advisory_lock(%s)", (HOLD_OBJECTS,))
    for _ in range(CREATES):
        race.create()
    race.wait_for(lambda: race.waiting("advisory") == CREATES, "the creates to be inserting")
    race.delete()
    # Fixed: DELETE waits for the creates' lock on the stack row. Before: it went
    # through, and the creates then wrote after its marker.
    race.wait_for(
        lambda: race.waiting(*ROW_LOCK) == 1 or bool(race.deletes), "DELETE to wait or finish"
    )
    # The marker must come after the objects in commit order too, not only in
    # sequence_id (which the creates drew before they were held).
    assert race.deletes == [], "DELETE finished while creates of its stack were uncommitted"
    race.watch.execute("SELECT pg_advisory_unlock(%s)", (HOLD_OBJECTS,))
    race.join()
    assert race.creates == [201] * CREATES and race.deletes == [204]
    objects = race.objects()
    assert [marker for _, marker in objects] == [False] * CREATES + [True], objects


def test_creates_that_come_after_the_delete_are_404_and_write_nothing(
    broker: AdminBroker, database_url: str
):
    process, admin = broker
    race = Race(process, admin, database_url)
    race.watch.execute("SELECT pg_advisory_lock(%s)", (HOLD_MARKER,))
    race.delete()  # holds the stack row, and waits to insert its marker
    race.wait_for(lambda: race.waiting("advisory") == 1, "DELETE to be inserting its marker")
    for _ in range(CREATES):
        race.create()  # the stack still looks live to them: the DELETE has not committed
    race.wait_for(lambda: race.waiting(*ROW_LOCK) == CREATES, "the creates to wait for the row")
    race.watch.execute("SELECT pg_advisory_unlock(%s)", (HOLD_MARKER,))
    race.join()
    assert race.deletes == [204]
    assert race.creates == [404] * CREATES, race.creates
    assert [marker for _, marker in race.objects()] == [True]
