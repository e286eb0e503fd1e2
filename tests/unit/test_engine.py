"""The engine's pure decisions (capabilities, the runc wrapper, paths, cleanup) and the
one "does Docker answer" probe, asked by the real docker CLI over a unix socket."""

from __future__ import annotations

import http.server
import json
import shutil
import socket
import socketserver
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from brokkr_dev.containers import podman
from brokkr_dev.containers.engine import cleanup, daemon, host, runc_wrapper, runner_engine

# Seen on these microVMs: every capability up to 40 except CAP_SYS_RESOURCE (24).
MICROVM_CAPBND = 0x000001FFFEFFFFFF
FULL_CAPBND = 0x000001FFFFFFFFFF


def test_bounding_set_is_read_from_proc_status() -> None:
    status = "Name:\tpython3\nCapEff:\t000001ffffffffff\nCapBnd:\t000001fffeffffff\n"
    assert host.bounding_set(status) == MICROVM_CAPBND


def test_bounding_set_missing_is_an_error() -> None:
    with pytest.raises(ValueError, match="CapBnd"):
        host.bounding_set("Name:\tx\n")


def test_missing_sys_resource_is_detected() -> None:
    assert host.missing_capabilities(MICROVM_CAPBND) == ("CAP_SYS_RESOURCE",)
    assert host.missing_capabilities(FULL_CAPBND) == ()


def test_this_host_can_be_inspected() -> None:
    assert set(host.host_missing_capabilities()) <= set(host.WRAPPED_CAPABILITIES)


def test_drop_capabilities_from_every_set() -> None:
    process = {
        "capabilities": {
            "bounding": ["CAP_CHOWN", "CAP_SYS_RESOURCE"],
            "effective": ["CAP_SYS_RESOURCE"],
            "permitted": ["CAP_CHOWN"],
        }
    }
    assert runc_wrapper.drop_capabilities(process, ["CAP_SYS_RESOURCE"])
    assert process["capabilities"] == {
        "bounding": ["CAP_CHOWN"],
        "effective": [],
        "permitted": ["CAP_CHOWN"],
    }
    assert not runc_wrapper.drop_capabilities(process, ["CAP_SYS_RESOURCE"])


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (
            ["--root", "/run/r", "--log-format", "json", "create", "--bundle", "/b", "id"],
            [(Path("/b/config.json"), True)],
        ),
        (["run", "--bundle=/b2", "id"], [(Path("/b2/config.json"), True)]),
        (["exec", "--process", "/tmp/p.json", "--detach", "id"], [(Path("/tmp/p.json"), False)]),
        (["--root", "/run/r", "start", "id"], []),
        (["--root", "/run/r", "delete", "--force", "id"], []),
    ],
)
def test_wrapper_patches_the_right_file(argv: list[str], expected: list) -> None:
    assert runc_wrapper.files_to_patch(argv) == expected


def test_wrapper_rewrites_a_bundle_config(tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    spec = {
        "ociVersion": "1.0.2",
        "process": {"capabilities": {"bounding": ["CAP_SYS_RESOURCE", "CAP_KILL"]}},
    }
    config.write_text(json.dumps(spec))
    runc_wrapper.patch(config, True, ["CAP_SYS_RESOURCE"])
    rewritten = json.loads(config.read_text())
    assert rewritten["process"]["capabilities"]["bounding"] == ["CAP_KILL"]
    assert rewritten["ociVersion"] == "1.0.2"


def test_wrapper_source_is_configured_and_runnable(tmp_path: Path) -> None:
    template = Path(runc_wrapper.__file__).read_text()
    source = host.wrapper_source(template, "/opt/runc", ("CAP_SYS_RESOURCE", "CAP_X"))
    assert source.startswith("#!/usr/bin/python3")
    assert "REAL_RUNC = '/opt/runc'" in source
    assert "DROP: tuple[str, ...] = ('CAP_SYS_RESOURCE', 'CAP_X')" in source
    compile(source, "brokkr-runc", "exec")


def test_layout_is_fixed_and_machine_wide() -> None:
    layout = host.EngineLayout.from_env({})
    assert layout.docker_root == Path("/var/lib/brokkr-engine/docker")
    assert layout.host == "unix:///run/brokkr-engine/docker.sock"
    assert layout.pidfile.parent == layout.run_dir
    overridden = host.EngineLayout.from_env(
        {"BROKKR_ENGINE_DATA_ROOT": "/d", "BROKKR_ENGINE_RUN_DIR": "/r"}
    )
    assert overridden.host == "unix:///r/docker.sock"
    assert overridden.docker_root == Path("/d/docker")


def test_candidates_prefer_an_explicit_engine_then_the_default_then_ours() -> None:
    layout = host.EngineLayout()
    assert host.candidate_hosts({"DOCKER_HOST": "tcp://127.0.0.1:2375"}, layout) == [
        ("tcp://127.0.0.1:2375", False),
        ("unix:///var/run/docker.sock", False),
        (layout.host, True),
    ]
    assert host.candidate_hosts({}, layout) == [
        ("unix:///var/run/docker.sock", False),
        (layout.host, True),
    ]
    assert host.candidate_hosts({"DOCKER_HOST": layout.host}, layout)[0] == (layout.host, True)


def test_dockerd_arguments() -> None:
    layout = host.EngineLayout(Path("/d"), Path("/r"), default_bridge=False)
    arguments = host.dockerd_arguments(layout, wrap_runtime=True)
    assert arguments[0] == "dockerd"
    assert arguments[1:3] == ["--data-root", "/d/docker"]
    assert "native.cgroupdriver=cgroupfs" in arguments
    assert arguments[-4:] == [
        "--add-runtime",
        "brokkr-runc=/d/brokkr-runc",
        "--default-runtime",
        "brokkr-runc",
    ]
    assert arguments[-6:-4] == ["--bridge", "none"]
    plain = host.dockerd_arguments(host.EngineLayout(), wrap_runtime=False)
    assert "--add-runtime" not in plain
    assert "--bridge" not in plain


SAVED = """# Generated by iptables-save
*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:DOCKER - [0:0]
:DOCKER-ISOLATION-STAGE-1 - [0:0]
:DOCKER-USER - [0:0]
:KEEP-ME - [0:0]
-A INPUT -p tcp --dport 22 -j KEEP-ME
-A FORWARD -j DOCKER-USER
-A FORWARD -o docker0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -i br-0123456789ab ! -o br-0123456789ab -j ACCEPT
-A FORWARD -i podman0 -j ACCEPT
-A DOCKER-USER -j RETURN
COMMIT
*mangle
:FORWARD ACCEPT [0:0]
COMMIT
*nat
:POSTROUTING ACCEPT [0:0]
:DOCKER - [0:0]
-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER
-A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE
-A POSTROUTING -s 10.88.0.0/16 -j MASQUERADE
COMMIT
"""


def test_strip_docker_rules_keeps_everything_else() -> None:
    cleaned = cleanup.strip_docker_rules(SAVED, {"docker0", "br-0123456789ab"})
    assert "DOCKER" not in cleaned
    assert "docker0" not in cleaned
    assert "br-0123456789ab" not in cleaned
    for kept in (
        ":KEEP-ME - [0:0]",
        "-A INPUT -p tcp --dport 22 -j KEEP-ME",
        "-A FORWARD -i podman0 -j ACCEPT",
        "-A POSTROUTING -s 10.88.0.0/16 -j MASQUERADE",
        "*mangle",
    ):
        assert kept in cleaned
    assert cleaned.count("COMMIT") == 3


def test_forward_policy_only_touches_the_filter_table() -> None:
    assert cleanup.forward_policy(SAVED) == "DROP"
    restored = cleanup.set_forward_policy(SAVED, "ACCEPT")
    assert cleanup.forward_policy(restored) == "ACCEPT"
    assert "*mangle\n:FORWARD ACCEPT [0:0]" in restored


def test_bridge_names() -> None:
    assert cleanup.bridge_name("0123456789abcdef", {}) == "br-0123456789ab"
    named = {"com.docker.network.bridge.name": "docker0"}
    assert cleanup.bridge_name("ffff", named) == "docker0"
    links = ["lo", "eth0", "docker0", "br-0123456789ab", "br-lan", "podman0"]
    assert cleanup.leftover_bridges(links) == ["docker0", "br-0123456789ab"]


class _DockerApi(http.server.BaseHTTPRequestHandler):
    """The two calls `docker version` makes: /_ping, then /v<api>/version."""

    protocol_version = "HTTP/1.1"

    def do_HEAD(self) -> None:
        self._answer(with_body=False)

    def do_GET(self) -> None:
        self._answer(with_body=True)

    def _answer(self, *, with_body: bool) -> None:
        if self.path.endswith("/_ping"):
            body, content_type = b"OK", "text/plain"
        elif self.path.endswith("/version"):
            body = json.dumps({"Version": "99.0.1", "ApiVersion": "1.41", "Os": "linux"}).encode()
            content_type = "application/json"
        else:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Api-Version", "1.41")
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if with_body:
            self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # quiet: no access log
        pass


class _UnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


@pytest.fixture
def our_engine_layout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[host.EngineLayout]:
    """Our dockerd's socket answering the Docker API (the real docker CLI asks it),
    no DOCKER_HOST, and a default socket where nothing listens."""
    run_dir = Path(tempfile.mkdtemp(prefix="engine-", dir="/tmp"))  # short: sun_path limit
    layout = host.EngineLayout(data_root=tmp_path / "data", run_dir=run_dir)
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    monkeypatch.setenv("BROKKR_ENGINE_RUN_DIR", str(run_dir))
    monkeypatch.setattr(host, "DEFAULT_DOCKER_SOCKET", run_dir / "default.sock")
    server = _UnixServer(str(layout.socket), _DockerApi)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield layout
    server.shutdown()
    server.server_close()
    thread.join()
    shutil.rmtree(run_dir, ignore_errors=True)


def test_the_probe_finds_our_own_dockerd_without_docker_host(
    our_engine_layout: host.EngineLayout,
) -> None:
    assert shutil.which("docker"), "the probe runs the docker CLI; install it"
    found = daemon.find_engine(our_engine_layout, env={})
    assert found is not None
    assert (found.host, found.ours, found.server_version) == (
        our_engine_layout.host,
        True,
        "99.0.1",
    )


def test_auto_builds_with_buildx_while_our_own_dockerd_runs(
    our_engine_layout: host.EngineLayout,
) -> None:
    # The old probe asked only DOCKER_HOST and the default socket, so `auto` chose podman.
    assert podman.choose_builder("auto") == "buildx"


def test_a_dead_docker_host_falls_through_to_the_next_engine(
    our_engine_layout: host.EngineLayout,
) -> None:
    dead = our_engine_layout.run_dir / "dead.sock"
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(dead))  # bound, never listening: connections are refused
    try:
        assert daemon.answers(f"unix://{dead}") is None
        found = daemon.find_engine(our_engine_layout, env={"DOCKER_HOST": f"unix://{dead}"})
    finally:
        listener.close()
    assert found is not None and found.host == our_engine_layout.host


def test_without_any_engine_auto_builds_with_podman(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/none.sock")
    monkeypatch.setenv("BROKKR_ENGINE_RUN_DIR", str(tmp_path / "run"))
    monkeypatch.setattr(host, "DEFAULT_DOCKER_SOCKET", tmp_path / "default.sock")
    assert daemon.find_engine() is None
    assert shutil.which("podman"), "the unit tests run where podman is installed"
    assert podman.choose_builder("auto") == "podman"


def test_runner_engine_serves_the_default_socket_for_the_docker_group() -> None:
    """A stock runner's engine: /var/run/docker.sock, group docker, our mirrors."""
    layout = runner_engine.layout(("http://127.0.0.1:5057",))
    arguments = host.dockerd_arguments(layout, wrap_runtime=False)
    assert layout.host == "unix:///var/run/docker.sock"
    assert arguments[arguments.index("--host") + 1] == "unix:///var/run/docker.sock"
    assert arguments[arguments.index("--group") + 1] == "docker"
    assert arguments[arguments.index("--registry-mirror") + 1] == "http://127.0.0.1:5057"
    assert layout.pidfile.parent == runner_engine.RUN_DIR
    assert "--group" not in host.dockerd_arguments(host.EngineLayout(), wrap_runtime=False)
