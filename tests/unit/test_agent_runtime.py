"""Backoff, metrics text, /health document, kubeconfig reading and the broker client's
connection handling (a local HTTP server; no services needed)."""

import base64
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

from brokkr.agent.broker_client import BrokerClient, BrokerError, describe
from brokkr.agent.kube import KubeConfigError, Resource, from_kubeconfig
from brokkr.agent.service import backoff
from brokkr.agent.state import AgentState


def test_backoff_grows_with_jitter_and_stays_under_the_cap():
    for failures in range(1, 12):
        delay = backoff(failures, 10.0, 300.0)
        ceiling = min(300.0, 10.0 * 2 ** (failures - 1))
        assert ceiling / 2 <= delay <= ceiling
    assert len({backoff(3, 10.0, 300.0) for _ in range(20)}) > 1


def test_metrics_render_counters_histograms_and_state_gauges():
    state = AgentState()
    state.metrics.poll("success", 0.5)
    state.metrics.poll("success", 0.2)
    state.metrics.error("kubernetes")
    state.metrics.applied("FAILURE", 0.1, applied=0, deleted=0)
    state.metrics.applied("SURPRISE", 0.1, applied=3, deleted=1)
    state.update(last_successful_poll=1700000000.0, kube_connected=True)
    text = state.metrics_text().decode()
    assert 'brokkr_agent_polls_total{result="success"} 2.0' in text
    assert 'brokkr_agent_polls_total{result="error"} 0.0' in text  # pre-created
    assert 'brokkr_agent_errors_total{source="kubernetes"} 1.0' in text
    assert 'brokkr_agent_applies_total{result="failure"} 1.0' in text
    assert 'brokkr_agent_applies_total{result="other"} 1.0' in text  # bounded label
    assert "brokkr_agent_applied_objects_total 3.0" in text
    assert "brokkr_agent_pruned_objects_total 1.0" in text
    assert "brokkr_agent_poll_duration_seconds_count 2.0" in text
    assert 'brokkr_agent_poll_duration_seconds_bucket{le="0.25"} 1.0' in text
    assert "brokkr_agent_last_successful_poll_timestamp_seconds 1.7e+09" in text
    assert "brokkr_agent_kubernetes_connected 1.0" in text
    assert "# TYPE brokkr_agent_uptime_seconds gauge" in text


def test_health_document_shape_and_status():
    state = AgentState()
    assert state.snapshot()["status"] == "starting"
    state.update(
        phase="running", kube_connected=True, broker_connected=True, agent={"status": "ACTIVE"}
    )
    doc = json.loads(json.dumps(state.snapshot()))
    assert doc["status"] == "healthy"
    assert set(doc) >= {"status", "version", "uptime_seconds", "timestamp", "kubernetes", "broker"}
    assert set(doc["broker"]) == {"connected", "last_heartbeat", "last_successful_poll", "error"}
    state.update(broker_connected=False)
    assert state.snapshot()["status"] == "degraded"


def test_resource_paths():
    cm = Resource("", "v1", "configmaps", "ConfigMap", True)
    crd = Resource("apiextensions.k8s.io", "v1", "customresourcedefinitions", "CRD", False)
    assert cm.path("demo", "c") == "/api/v1/namespaces/demo/configmaps/c"
    assert cm.path() == "/api/v1/configmaps"
    assert crd.path("", "x") == "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/x"


def _kubeconfig(tmp_path: Path, user: dict) -> Path:
    path = tmp_path / "config"
    path.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "local",
                "contexts": [{"name": "local", "context": {"cluster": "c", "user": "u"}}],
                "clusters": [
                    {
                        "name": "c",
                        "cluster": {
                            "server": "https://127.0.0.1:6443/",
                            "certificate-authority-data": base64.b64encode(b"CA").decode(),
                        },
                    }
                ],
                "users": [{"name": "u", "user": user}],
            }
        )
    )
    return path


def test_kubeconfig_with_inline_client_certificate(tmp_path: Path):
    data = {
        "client-certificate-data": base64.b64encode(b"CERT").decode(),
        "client-key-data": base64.b64encode(b"KEY").decode(),
    }
    access = from_kubeconfig(_kubeconfig(tmp_path, data))
    assert access.server == "https://127.0.0.1:6443"
    assert access.config.user is not None
    assert access.config.user.client_key_data == data["client-key-data"]
    # "CA" is no certificate: the error names the kubeconfig instead of an ssl traceback.
    with pytest.raises(KubeConfigError, match=r"kubeconfig .*config \(context local\)"):
        access.http_client(5.0)


def test_kubeconfig_with_token_and_a_missing_context(tmp_path: Path):
    access = from_kubeconfig(_kubeconfig(tmp_path, {"token": "t0k"}))
    assert access.config.user is not None and access.config.user.token == "t0k"
    assert access.proxy is None
    broken = tmp_path / "broken"
    broken.write_text("current-context: nope\ncontexts: []\n")
    with pytest.raises(KubeConfigError, match="no context named 'nope'"):
        from_kubeconfig(broken)


def test_kubeconfig_naming_a_missing_user_is_refused(tmp_path: Path):
    path = _kubeconfig(tmp_path, {"token": "t0k"})
    path.write_text(path.read_text().replace('"name": "u"', '"name": "someone-else"'))
    with pytest.raises(KubeConfigError, match="names user 'u', which is not in users"):
        from_kubeconfig(path)


def test_exec_plugins_need_an_api_version_lightkube_speaks(tmp_path: Path):
    plugin = {"command": "aws", "args": ["eks", "get-token"]}
    v1 = {"exec": {**plugin, "apiVersion": "client.authentication.k8s.io/v1"}}
    with pytest.raises(KubeConfigError, match=r"set the user's exec apiVersion to .*v1beta1"):
        from_kubeconfig(_kubeconfig(tmp_path, v1))
    v1beta1 = {"exec": {**plugin, "apiVersion": "client.authentication.k8s.io/v1beta1"}}
    access = from_kubeconfig(_kubeconfig(tmp_path, v1beta1))
    assert access.config.user is not None and access.config.user.exec is not None
    assert access.config.user.exec.command == "aws"


def test_auth_provider_users_are_refused_with_the_fix(tmp_path: Path):
    user = {"auth-provider": {"name": "oidc", "config": {}}}
    with pytest.raises(KubeConfigError, match="exec credential plugin instead"):
        from_kubeconfig(_kubeconfig(tmp_path, user))


def test_request_failures_are_described_in_one_line():
    refused = requests.ConnectionError(
        "HTTPConnectionPool(host='h', port=1): Max retries exceeded (Caused by "
        'NewConnectionError("...: Failed to establish a new connection: [Errno 111] Connection refused"))'
    )
    assert describe(refused) == "[Errno 111] Connection refused"
    tls = requests.exceptions.SSLError(
        "... SSLCertVerificationError(1, '[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify "
        "failed: self-signed certificate (_ssl.c:1006)')"
    )
    assert describe(tls) == "certificate verify failed: self-signed certificate"
    assert describe(requests.ReadTimeout()) == "timed out"


class _PinningServer(ThreadingHTTPServer):
    """Answers 404 on the first connection (kept alive, like a wrong server would),
    204 on every later one (the broker the agent should reach)."""

    daemon_threads = True

    def __init__(self) -> None:
        self.connections = 0
        super().__init__(("127.0.0.1", 0), _PinningHandler)


class _PinningHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as a real server does
    server: _PinningServer

    def setup(self) -> None:
        super().setup()
        self.server.connections += 1
        self.connection_number = self.server.connections

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(404 if self.connection_number == 1 else 204)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_a_failed_call_drops_the_kept_alive_connection_so_the_next_one_connects_afresh():
    server = _PinningServer()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        client = BrokerClient(f"http://127.0.0.1:{server.server_address[1]}", "pak", None, 5)
        with pytest.raises(BrokerError) as failed:
            client.heartbeat("a1", True, 3)
        assert failed.value.status == 404
        client.heartbeat("a1", True, 3)  # a new connection: 204, not the pinned 404
        assert server.connections == 2
    finally:
        server.shutdown()
        server.server_close()
