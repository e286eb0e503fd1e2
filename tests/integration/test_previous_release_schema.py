"""Real N-1 code across a schema change, on PostgreSQL: upgrade, then roll back.

N-1 is the broker of the previous release (tests.fixtures.previous_release: the
highest release tag, else the commit pinned there), run from its own source. The
working tree's broker crosses a real change of the schema since then (its migration
bookkeeping gains `backward_compatible`), and an additive migration as the next
release ships one (a nullable column and an index, absent in N-1) is applied on
top. The migration policy (docs/upgrading.md) then promises the rollback: N-1's
broker runs on the newer schema with its data and its PAKs.

On kind, tests/e2e_kind/test_upgrade.py does the same with images and charts.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import requests

from brokkr.broker.db import migrate
from brokkr_dev.base import paths
from brokkr_dev.local.services import LocalBroker
from tests.fixtures.previous_release import find

pytestmark = pytest.mark.postgres

# What the next release's additive migration looks like (the policy's kind: a nullable
# column the new code may use and an index; nothing N-1 reads is dropped or renamed).
ADDITIVE = migrate.Migration(
    migrate.latest_version() + 1,
    "agents_note",
    "ALTER TABLE agents ADD COLUMN note text;\n"
    "CREATE INDEX agents_cluster_name_note ON agents (cluster_name, note);\n",
)


@pytest.fixture(scope="module")
def previous_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """N-1's `src/` (its brokkr package), extracted from git."""
    previous = find(paths.REPO_ROOT)
    dest = tmp_path_factory.mktemp("previous-release")
    archive = subprocess.run(
        ["git", "-C", str(paths.REPO_ROOT), "archive", "--format=tar", previous.source, "src/brokkr"],
        capture_output=True, check=True, timeout=60,
    )  # fmt: skip
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive.stdout, check=True, timeout=60)
    return dest / "src"


def broker(database_url: str, work: Path, source: Path | None = None) -> LocalBroker:
    """A broker on the database: N-1's when `source` is given, else the working tree's."""
    return LocalBroker(
        {"database": {"url": database_url}, "broker": {"admin_pak_file": str(work / "admin.pak")}},
        log_file=work / ("previous.log" if source else "current.log"),
        env={"PYTHONPATH": str(source)} if source else None,
    )


@pytest.fixture
def n_minus_1(
    empty_database_url: str, previous_source: Path, tmp_path: Path
) -> Iterator[LocalBroker]:
    service = broker(empty_database_url, tmp_path, previous_source)
    yield service
    service.stop()


def columns(database_url: str, table: str) -> set[str]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = %s", (table,)
        ).fetchall()
    return {row[0] for row in rows}


def agents(service: LocalBroker, pak: str) -> list[dict]:
    reply = requests.get(
        f"{service.url}/api/v1/agents", headers={"Authorization": f"Bearer {pak}"}, timeout=10
    )
    assert reply.status_code == 200, reply.text
    return list(reply.json())


def new_agent(service: LocalBroker, pak: str, name: str) -> None:
    reply = requests.post(
        f"{service.url}/api/v1/agents",
        headers={"Authorization": f"Bearer {pak}"},
        json={"name": name, "cluster_name": "upgrade"},
        timeout=10,
    )
    assert reply.status_code in {200, 201}, reply.text


def test_the_previous_release_is_older_code_than_the_working_tree(previous_source: Path):
    old = (previous_source / "brokkr" / "broker" / "db" / "migrate.py").read_text()
    assert old != Path(migrate.__file__).read_text()
    assert "backward_compatible" not in old  # the bookkeeping change this test crosses


def test_upgrade_applies_the_additive_migration_and_rollback_runs_n_minus_1_on_it(
    empty_database_url: str, n_minus_1: LocalBroker, previous_source: Path, tmp_path: Path
):
    # N-1 creates the schema, mints the admin PAK and holds data.
    with n_minus_1:
        pak = n_minus_1.admin_pak()
        new_agent(n_minus_1, pak, "before-upgrade")
    assert "backward_compatible" not in columns(empty_database_url, "schema_migrations")
    assert "note" not in columns(empty_database_url, "agents")

    # Upgrade: the working tree's migrations, plus the next release's additive one.
    applied = migrate.apply(empty_database_url, [*migrate.available(), ADDITIVE])
    assert [m.version for m in applied] == [ADDITIVE.version]
    assert "backward_compatible" in columns(empty_database_url, "schema_migrations")
    assert "note" in columns(empty_database_url, "agents")
    with broker(empty_database_url, tmp_path) as current:
        assert {a["name"] for a in agents(current, pak)} == {"before-upgrade"}
        new_agent(current, pak, "after-upgrade")

    # Rollback (docs/upgrading.md): N-1's broker starts on the newer schema, reads what
    # both wrote, and writes; its PAK still authenticates.
    rolled_back = broker(empty_database_url, tmp_path, previous_source)
    with rolled_back:
        assert requests.get(f"{rolled_back.url}/readyz", timeout=10).status_code == 200
        assert {a["name"] for a in agents(rolled_back, pak)} == {"before-upgrade", "after-upgrade"}
        new_agent(rolled_back, pak, "after-rollback")
    with psycopg.connect(empty_database_url) as conn:
        notes = conn.execute("SELECT name, note FROM agents ORDER BY name").fetchall()
        versions = conn.execute("SELECT version FROM schema_migrations ORDER BY 1").fetchall()
    assert notes == [("after-rollback", None), ("after-upgrade", None), ("before-upgrade", None)]
    assert [v[0] for v in versions] == [*range(1, ADDITIVE.version + 1)]
