"""`brokkr-broker`: serve the API and administer the database from the command line.

Every command reads the same layered configuration as the server
(BROKKR_CONFIG_FILE, BROKKR__SECTION__KEY variables).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import psycopg
import uvloop
from psycopg.rows import dict_row

from brokkr.broker import bootstrap, pak, server
from brokkr.broker.db import migrate
from brokkr.broker.names import name_problem
from brokkr.broker.settings import Settings, load_settings
from brokkr.common.config import ConfigError
from brokkr.common.logging import configure

log = logging.getLogger("brokkr.broker")


class CliError(RuntimeError):
    """A failure with a message for the operator; exit status 1."""


def _settings() -> Settings:
    settings = load_settings()
    configure(settings.log)
    return settings


def cmd_serve(args: argparse.Namespace) -> int:
    settings = _settings()
    warnings = server.prepare_database(settings)
    if settings.broker.workers > 1:
        return server.run_workers(settings, warnings, uvloop.run)
    started = uvloop.run(server.serve(settings, warnings))
    return 0 if started else 3


def cmd_migrate(args: argparse.Namespace) -> int:
    settings = _settings()
    applied = migrate.apply(settings.database.conninfo())
    for migration in applied:
        print(f"applied {migration.version:04d}_{migration.name}")
    print(f"schema at version {migrate.latest_version()}")
    return 0


def cmd_generate_pak(args: argparse.Namespace) -> int:
    new = pak.generate()
    if args.json:
        print(json.dumps({"pak": new.pak, "hash": new.hash}))
    else:
        print(f"pak:  {new.pak}\nhash: {new.hash}")
        print(
            "Keep the PAK secret; configure the broker with the hash, e.g. "
            "BROKKR__BROKER__PAK_HASH=<hash>.",
            file=sys.stderr,
        )
    return 0


def _name(value: str) -> str:
    """The API's rule for names (`names.py`), so the CLI cannot store one it refuses."""
    problem = name_problem(value)
    if problem:
        raise argparse.ArgumentTypeError(f"{value!r}: a name {problem}")
    return value


def _insert(conninfo: str, sql: str, params: tuple[object, ...]) -> dict[str, object]:
    try:
        with psycopg.connect(conninfo, row_factory=dict_row) as conn:
            row = conn.execute(sql, params).fetchone()
    except psycopg.errors.UniqueViolation:
        raise CliError("the name is already taken; choose another one") from None
    if row is None:
        raise CliError("the database returned no row for the insert")
    return row


def cmd_create_agent(args: argparse.Namespace) -> int:
    settings = _settings()
    new = pak.generate()
    row = _insert(
        settings.database.conninfo(),
        "INSERT INTO agents (name, cluster_name, pak_hash) VALUES (%s, %s, %s)"
        " RETURNING id::text, name, cluster_name, status",
        (args.name, args.cluster_name, new.hash),
    )
    print(json.dumps({"agent": row, "initial_pak": new.pak}, indent=2))
    return 0


def cmd_create_generator(args: argparse.Namespace) -> int:
    settings = _settings()
    new = pak.generate()
    row = _insert(
        settings.database.conninfo(),
        "INSERT INTO generators (name, description, pak_hash) VALUES (%s, %s, %s)"
        " RETURNING id::text, name",
        (args.name, args.description, new.hash),
    )
    print(json.dumps({"generator": row, "pak": new.pak}, indent=2))
    return 0


def cmd_rotate_admin(args: argparse.Namespace) -> int:
    settings = _settings()
    if settings.broker.pak_hash is not None:
        print(
            "warning: BROKKR__BROKER__PAK_HASH is set; the broker will restore that hash at "
            "its next start unless you update the setting too",
            file=sys.stderr,
        )
    new = pak.generate()
    with psycopg.connect(settings.database.conninfo()) as conn:
        bootstrap.store_admin_hash(conn, new.hash)
    if args.output:
        bootstrap.write_secret_file(Path(args.output), new.pak)
        print(f"new admin PAK written to {args.output} (mode 0600); the old one no longer works")
    else:
        print(new.pak)
    print(f"hash: {new.hash}", file=sys.stderr)
    return 0


def parser() -> argparse.ArgumentParser:
    """The argument parser (one sub-command per task)."""
    top = argparse.ArgumentParser(
        prog="brokkr-broker",
        description="Brokkr broker: the v1 API on PostgreSQL. Configure with BROKKR_CONFIG_FILE "
        "and BROKKR__SECTION__KEY variables (see docs/broker.md).",
    )
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser(
        "serve", help="migrate, bootstrap the admin PAK, serve HTTP(S) until SIGTERM"
    ).set_defaults(func=cmd_serve)
    sub.add_parser("migrate", help="apply pending schema migrations and exit").set_defaults(
        func=cmd_migrate
    )
    gen = sub.add_parser("generate-pak", help="print a new PAK and its hash (no database)")
    gen.add_argument("--json", action="store_true", help="print {pak, hash} as JSON")
    gen.set_defaults(func=cmd_generate_pak)
    agent = sub.add_parser("create-agent", help="create an agent and print its first PAK")
    agent.add_argument("--name", required=True, type=_name, help="agent name")
    agent.add_argument(
        "--cluster-name", required=True, type=_name, help="cluster the agent runs in"
    )
    agent.set_defaults(func=cmd_create_agent)
    gen2 = sub.add_parser("create-generator", help="create a generator and print its PAK")
    gen2.add_argument("--name", required=True, type=_name, help="generator name (unique)")
    gen2.add_argument("--description", default=None, help="free text")
    gen2.set_defaults(func=cmd_create_generator)
    rot = sub.add_parser(
        "rotate-admin", help="replace the admin PAK; print it or write it to --output (0600)"
    )
    rot.add_argument("--output", help="write the new PAK to this file instead of stdout")
    rot.set_defaults(func=cmd_rotate_admin)
    return top


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `brokkr-broker` console script."""
    args = parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (bootstrap.BootstrapError, CliError, migrate.SchemaTooNewError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except psycopg.OperationalError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(
            f"error: cannot reach PostgreSQL: {first}\n"
            "check BROKKR__DATABASE__URL or BROKKR__DATABASE__HOST/PORT/USER and that the "
            "server runs",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
