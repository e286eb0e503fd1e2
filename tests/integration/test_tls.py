"""HTTPS from the broker itself, with a CA made here and certificate hot reload."""

from __future__ import annotations

import socket
import ssl
import subprocess
from pathlib import Path

import httpx
import pytest

from brokkr.broker import pak
from brokkr_dev.local.services import LocalBroker, Tls

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


def openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def make_ca(directory: Path) -> tuple[Path, Path]:
    key, cert = directory / "ca.key", directory / "ca.crt"
    openssl(
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        str(key),
        "-out",
        str(cert),
        "-days",
        "2",
        "-subj",
        "/CN=test-ca",
    )
    return cert, key


def issue(directory: Path, ca: tuple[Path, Path], name: str) -> tuple[Path, Path]:
    """A server certificate for 127.0.0.1 signed by the test CA."""
    key, csr, cert = directory / f"{name}.key", directory / f"{name}.csr", directory / f"{name}.crt"
    ext = directory / f"{name}.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    openssl(
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        str(key),
        "-out",
        str(csr),
        "-subj",
        f"/CN={name}",
    )
    openssl(
        "x509",
        "-req",
        "-in",
        str(csr),
        "-CA",
        str(ca[0]),
        "-CAkey",
        str(ca[1]),
        "-CAcreateserial",
        "-out",
        str(cert),
        "-days",
        "1",
        "-extfile",
        str(ext),
    )
    return cert, key


def served_common_name(port: int, ca_file: Path) -> str:
    context = ssl.create_default_context(cafile=str(ca_file))
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        subject = dict(item[0] for item in tls.getpeercert()["subject"])
    return subject["commonName"]


def test_https_with_certificate_hot_reload(database_url: str, tmp_path: Path):
    ca = make_ca(tmp_path)
    first = issue(tmp_path, ca, "first")
    live_cert, live_key = tmp_path / "tls.crt", tmp_path / "tls.key"
    live_cert.write_bytes(first[0].read_bytes())
    live_key.write_bytes(first[1].read_bytes())
    broker = LocalBroker(
        {
            "database": {"url": database_url},
            "broker": {"pak_hash": pak.generate().hash, "tls": {"reload_interval": 0.2}},
        },
        tls=Tls(live_cert, live_key, ca[0]),
        log_file=tmp_path / "broker.log",
    )
    broker.start()
    try:
        assert served_common_name(broker.port, ca[0]) == "first"
        with pytest.raises(httpx.ConnectError):
            httpx.get(broker.url + "/healthz")  # not trusted without the test CA

        second = issue(tmp_path, ca, "second")
        # Replace key then certificate, as a Secret volume update would.
        live_key.write_bytes(second[1].read_bytes())
        live_cert.write_bytes(second[0].read_bytes())
        broker.wait_until(
            lambda: served_common_name(broker.port, ca[0]) == "second",
            10,
            "the new certificate to be served",
        )
        verify = ssl.create_default_context(cafile=str(ca[0]))
        assert httpx.get(broker.url + "/healthz", verify=verify).status_code == 200
        assert broker.process is not None and broker.process.poll() is None
        assert "TLS certificate reloaded" in broker.log()
    finally:
        broker.kill()
