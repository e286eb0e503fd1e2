"""The broker in-process for tests (TestClient); as a real process it is
`brokkr_dev.local.services.LocalBroker`."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx2
from starlette.testclient import TestClient

from brokkr.broker import bootstrap, pak
from brokkr.broker.app import create_app
from brokkr.broker.settings import Settings, load_settings


def settings_for(database_url: str, admin_hash: str, **broker: Any) -> Settings:
    env = {"BROKKR__DATABASE__URL": database_url, "BROKKR__BROKER__PAK_HASH": admin_hash}
    env.update({f"BROKKR__BROKER__{k.upper()}": str(v) for k, v in broker.items()})
    return load_settings(env)


class Api:
    """A TestClient with PAK helpers: `api.get(path, pak=...)`.

    The TestClient answers with httpx2 responses (Starlette's preferred client);
    calls to a broker process below use plain httpx.
    """

    def __init__(self, client: TestClient, admin: str) -> None:
        self.client = client
        self.admin = admin

    def call(self, method: str, path: str, pak: str | None = "admin", **kw: Any) -> httpx2.Response:
        headers = dict(kw.pop("headers", {}))
        if pak is not None:
            headers["Authorization"] = f"Bearer {self.admin if pak == 'admin' else pak}"
        return self.client.request(method, "/api/v1" + path, headers=headers, **kw)

    def get(self, path: str, **kw: Any) -> httpx2.Response:
        return self.call("GET", path, **kw)

    def post(self, path: str, **kw: Any) -> httpx2.Response:
        return self.call("POST", path, **kw)

    def put(self, path: str, **kw: Any) -> httpx2.Response:
        return self.call("PUT", path, **kw)

    def delete(self, path: str, **kw: Any) -> httpx2.Response:
        return self.call("DELETE", path, **kw)


@contextmanager
def in_process(database_url: str, **broker: Any) -> Iterator[Api]:
    """The broker app on a fresh database, with a known admin PAK."""
    admin = pak.generate()
    settings = settings_for(database_url, admin.hash, **broker)
    warnings = bootstrap.ensure_admin(settings.database.conninfo(), settings.broker)
    with TestClient(create_app(settings, warnings), raise_server_exceptions=True) as client:
        yield Api(client, admin.pak)
