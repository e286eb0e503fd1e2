"""HTTPS with certificate hot reload.

The server keeps one SSLContext for its whole life. A watcher checks the
certificate and key files every `reload_interval` seconds and loads them into
that same context when they change; OpenSSL then presents the new certificate
on every new handshake, without a restart. A broken pair (half-written
rotation) is logged and the previous certificate stays in use.
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
from pathlib import Path

log = logging.getLogger(__name__)


def _fingerprint(*paths: Path) -> tuple[tuple[int, int, int], ...]:
    result = []
    for path in paths:
        st = os.stat(path)
        result.append((st.st_mtime_ns, st.st_size, st.st_ino))
    return tuple(result)


class ReloadingContext:
    """An SSLContext bound to a certificate/key file pair that it follows."""

    def __init__(self, cert_file: str, key_file: str) -> None:
        self.cert = Path(cert_file)
        self.key = Path(key_file)
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            self._seen = _fingerprint(self.cert, self.key)
            self.context.load_cert_chain(self.cert, self.key)
        except (OSError, ssl.SSLError) as exc:
            raise ValueError(
                f"cannot load TLS certificate {self.cert} / key {self.key}: {exc}; check "
                "BROKKR__BROKER__TLS__CERT_FILE and BROKKR__BROKER__TLS__KEY_FILE"
            ) from None
        self.reloads = 0

    def reload_if_changed(self) -> bool:
        """Load the files again when they changed; True when a new pair is in use."""
        try:
            current = _fingerprint(self.cert, self.key)
        except OSError as exc:
            log.error("TLS files unreadable, keeping the current certificate: %s", exc)
            return False
        if current == self._seen:
            return False
        try:
            self.context.load_cert_chain(self.cert, self.key)
        except (OSError, ssl.SSLError) as exc:
            log.error("new TLS certificate/key rejected, keeping the current one: %s", exc)
            return False
        self._seen = current
        self.reloads += 1
        log.info("TLS certificate reloaded from %s", self.cert)
        return True

    async def watch(self, interval: float) -> None:
        """Check the files forever (cancel to stop)."""
        while True:
            await asyncio.sleep(interval)
            self.reload_if_changed()
