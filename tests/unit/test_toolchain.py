"""The pinned-tool installer: PATH reuse, Go builds, checksummed downloads, idempotence."""

from __future__ import annotations

import hashlib
import http.server
import io
import os
import shutil
import subprocess
import sys
import tarfile
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from brokkr_dev.base import paths, toolchain
from brokkr_dev.base.toolchain import Archive, Tool, ToolError

REPO = Path(__file__).resolve().parents[2]
GO = shutil.which("go")  # looked up before tests narrow PATH


def script(version: str) -> bytes:
    return f"#!/bin/sh\necho 'fake version {version}'\n".encode()


def write_script(directory: Path, name: str, version: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_bytes(script(version))
    path.chmod(0o755)
    return path


def tarball(member: str, payload: bytes) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        info = tarfile.TarInfo(member)
        info.size = len(payload)
        info.mode = 0o755
        archive.addfile(info, io.BytesIO(payload))
    return buffer.getvalue()


class ArchiveServer:
    """A real HTTP server on loopback that serves one file and counts requests."""

    def __init__(self, payload: bytes) -> None:
        self.payload = payload
        self.requests = 0
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.requests += 1
                self.send_response(200)
                self.send_header("Content-Length", str(len(owner.payload)))
                self.end_headers()
                self.wfile.write(owner.payload)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/fake-{{version}}-{{os}}-{{arch}}.tar.gz"


@pytest.fixture
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private cache and bin/ and a PATH without any real tool of the same name."""
    monkeypatch.setenv("BROKKR_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("PATH", f"{tmp_path / 'path'}:/usr/bin:/bin")
    return tmp_path


@pytest.fixture
def server() -> Iterator[ArchiveServer]:
    srv = ArchiveServer(tarball("fake", script("1.2.3")))
    srv.thread.start()
    yield srv
    srv.server.shutdown()


def fake_tool(**overrides: object) -> Tool:
    base = Tool(name="fake", version="v1.2.3", binary="fake", version_args=("--version",))
    return replace(base, **overrides)  # type: ignore[arg-type]


def platform_key() -> str:
    os_name, arch = toolchain.host_platform()
    return f"{os_name}-{arch}"


def test_binary_on_path_with_the_pinned_version_is_used(isolated: Path):
    on_path = write_script(isolated / "path", "fake", "1.2.3")
    link = toolchain.ensure(fake_tool(), bin_dir=isolated / "bin", go="")
    assert link.resolve() == on_path.resolve()


def test_binary_on_path_with_another_version_is_ignored(isolated: Path, server: ArchiveServer):
    write_script(isolated / "path", "fake", "1.0.0")
    payload_sha = hashlib.sha256(server.payload).hexdigest()
    tool = fake_tool(archive=Archive(server.url, "fake", {platform_key(): payload_sha}))
    link = toolchain.ensure(tool, bin_dir=isolated / "bin", go="")
    assert link.resolve().is_relative_to(isolated / "cache")
    assert toolchain.probe_version(tool, link) == "1.2.3"


def test_download_checks_the_sha256_and_installs(isolated: Path, server: ArchiveServer):
    payload_sha = hashlib.sha256(server.payload).hexdigest()
    tool = fake_tool(archive=Archive(server.url, "fake", {platform_key(): payload_sha}))
    link = toolchain.ensure(tool, bin_dir=isolated / "bin", go="")
    assert subprocess.run([link], check=False, capture_output=True, text=True).stdout.strip() == (
        "fake version 1.2.3"
    )
    assert server.requests == 1


def test_checksum_mismatch_is_refused_and_nothing_is_installed(
    isolated: Path, server: ArchiveServer
):
    tool = fake_tool(archive=Archive(server.url, "fake", {platform_key(): "0" * 64}))
    with pytest.raises(ToolError, match="checksum mismatch") as caught:
        toolchain.ensure(tool, bin_dir=isolated / "bin", go="")
    assert hashlib.sha256(server.payload).hexdigest() in str(caught.value)
    assert not (isolated / "bin" / "fake").exists()
    assert not toolchain.cache_root(tool).exists()


def test_archive_without_a_pinned_checksum_is_not_trusted(isolated: Path, server: ArchiveServer):
    tool = fake_tool(archive=Archive(server.url, "fake", {}))
    with pytest.raises(ToolError, match=r"no SHA-256 is pinned for .*archive\.sha256"):
        toolchain.ensure(tool, bin_dir=isolated / "bin", go="")
    assert server.requests == 0


def test_installing_twice_does_nothing_the_second_time(isolated: Path, server: ArchiveServer):
    payload_sha = hashlib.sha256(server.payload).hexdigest()
    tool = fake_tool(archive=Archive(server.url, "fake", {platform_key(): payload_sha}))
    first: list[str] = []
    second: list[str] = []
    toolchain.ensure(tool, bin_dir=isolated / "bin", go="", log=first.append)
    toolchain.ensure(tool, bin_dir=isolated / "bin", go="", log=second.append)
    assert first
    assert second == []
    assert server.requests == 1


def test_no_go_and_no_network_says_what_is_missing(isolated: Path):
    tool = fake_tool(
        go_module="example.com/fake/cmd/fake",
        archive=Archive("http://127.0.0.1:9/fake.tar.gz", "fake", {platform_key(): "0" * 64}),
    )
    with pytest.raises(ToolError, match="cannot download .*install Go"):
        toolchain.ensure(tool, bin_dir=isolated / "bin", go="")


def test_go_only_tool_without_go_names_go_as_the_fix(isolated: Path):
    tool = fake_tool(go_module="example.com/fake/cmd/fake")
    with pytest.raises(ToolError, match="Go \\(not found: install Go"):
        toolchain.ensure(tool, bin_dir=isolated / "bin", go="")


def fake_go_module(isolated: Path, printed: str) -> Path:
    """A one-file Go main module that prints "fake" and `printed` (Go expressions)."""
    assert GO, "this test needs the Go toolchain (https://go.dev/dl)"
    module = isolated / "gomod"
    module.mkdir()
    (module / "go.mod").write_text("module example.com/fake\n\ngo 1.21\n")
    (module / "main.go").write_text(
        'package main\n\nimport "fmt"\n\nvar version = "dev"\n\n'
        f'func main() {{ fmt.Println("fake", {printed}) }}\n'
    )
    return module


def test_go_build_stamps_the_pinned_version(isolated: Path):
    module = fake_go_module(isolated, "version")
    tool = fake_tool(go_dir=str(module), go_ldflags="-X main.version={version}")
    link = toolchain.ensure(tool, bin_dir=isolated / "bin", go=GO)
    assert toolchain.probe_version(tool, link) == "1.2.3"
    # A second call reuses bin/ without building again.
    log: list[str] = []
    toolchain.ensure(tool, bin_dir=isolated / "bin", go=GO, log=log.append)
    assert log == []


def test_go_env_reaches_the_build(isolated: Path):
    """A go_env GOEXPERIMENT selects the files built under that experiment (as Trivy needs)."""
    module = fake_go_module(isolated, "version, flavour")
    (module / "plain.go").write_text(
        '//go:build !goexperiment.jsonv2\n\npackage main\n\nconst flavour = "plain"\n'
    )
    (module / "jsonv2.go").write_text(
        '//go:build goexperiment.jsonv2\n\npackage main\n\nconst flavour = "jsonv2"\n'
    )
    tool = fake_tool(
        go_dir=str(module),
        go_ldflags="-X main.version={version}",
        go_env={"GOEXPERIMENT": "jsonv2"},
    )
    link = toolchain.ensure(tool, bin_dir=isolated / "bin", go=GO)
    output = subprocess.run([link], capture_output=True, text=True, check=True).stdout
    assert output.split() == ["fake", "v1.2.3", "jsonv2"]


def test_go_env_must_be_a_table_of_strings(tmp_path: Path):
    bad = tmp_path / "tools.toml"
    bad.write_text("[trivy]\nversion = 'v1.0.0'\ngo_env = { GOEXPERIMENT = 1 }\n")
    with pytest.raises(ToolError, match=r"\[trivy\].*go_env must be a table of strings"):
        toolchain.load_manifest(bad)


def test_status_reports_missing_ok_and_wrong_version(isolated: Path):
    tool = fake_tool()
    assert toolchain.status(tool, bin_dir=isolated / "bin").status == "missing"
    write_script(isolated / "path", "fake", "0.9.0")
    assert toolchain.status(tool, bin_dir=isolated / "bin").status == "wrong version"
    write_script(isolated / "path", "fake", "1.2.3")
    report = toolchain.status(tool, bin_dir=isolated / "bin")
    assert (report.status, report.found) == ("ok", "1.2.3")
    table = toolchain.format_table([report])
    assert table.splitlines()[0].split() == ["tool", "pinned", "found", "path", "status"]


def test_the_real_manifest_is_complete():
    manifest = toolchain.load_manifest(paths.TOOLS_MANIFEST)
    for required in ("helm", "helm4", "kubeconform", "kind", "actionlint", "hadolint"):
        assert required in manifest
    for tool in manifest.values():
        assert tool.version[0] == "v" and tool.version.count(".") == 2, tool.name
        assert tool.go_module or tool.go_dir or tool.pip_package or tool.pip_venv or tool.archive, (
            tool.name
        )
    assert manifest["helm"].version.startswith("v3.")
    assert manifest["helm4"].version.startswith("v4.")
    # Prometheus 3.x ships as Go module v0.3MM.P: the release and module versions agree.
    for name in ("prometheus", "promtool"):
        major, minor, patch = manifest[name].version.lstrip("v").split(".")
        assert manifest[name].go_version == f"v0.{int(major) * 100 + int(minor)}.{patch}"


def test_the_collector_wrapper_builds_the_pinned_collector_release():
    """go/otelcol/go.mod requires the collector at tools.toml's [otelcol] version, so a
    bump of one without the other fails here, not in a test that starts it."""
    tool = toolchain.load_manifest(paths.TOOLS_MANIFEST)["otelcol"]
    go_mod = (paths.REPO_ROOT / tool.go_dir / "go.mod").read_text()
    assert f"go.opentelemetry.io/collector/otelcol {tool.version}\n" in go_mod
    assert (tool.on_demand, tool.role) == (True, "test")


def test_a_malformed_manifest_entry_is_named(tmp_path: Path):
    bad = tmp_path / "tools.toml"
    bad.write_text("[helm]\nbinary = 'helm'\n")
    with pytest.raises(ToolError, match=r"entry \[helm\]"):
        toolchain.load_manifest(bad)


def test_unknown_tool_name_fails_with_the_known_names():
    with pytest.raises(ToolError, match="unknown tool.*nope.*known: "):
        toolchain.select(toolchain.load_manifest(), ["nope"])


def test_invoke_reports_an_unknown_tool_and_exits_non_zero():
    result = subprocess.run(
        [sys.executable, "-m", "invoke", "tools.install", "--names", "nope"],
        cwd=REPO,
        check=False,
        capture_output=True,
        text=True,
        env={**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"},
    )
    assert result.returncode == 1
    assert "unknown tool(s): nope" in result.stderr


def test_pip_venv_tool_is_identified_by_its_package_metadata(isolated: Path):
    """A venv tool's version comes from its dist-info, without starting the CLI."""
    venv = isolated / "venv"
    site = venv / "lib" / "python3.11" / "site-packages"
    (site / "Fancy_Tool-1.2.3.dist-info").mkdir(parents=True)
    (site / "other-9.9.9.dist-info").mkdir()
    script = write_script(venv / "bin", "fancy", "0.0.0")  # would report the wrong version
    tool = fake_tool(name="fancy", binary="fancy", pip_venv="fancy-tool=={plain}")
    assert toolchain.probe_version(tool, script) == "1.2.3"
    link = isolated / "bin" / "fancy"
    link.parent.mkdir()
    link.symlink_to(script)
    assert toolchain.status(tool, bin_dir=isolated / "bin").status == "ok"


def test_version_pattern_picks_the_tools_own_version(isolated: Path):
    """govulncheck prints the Go release before its own version."""
    path = isolated / "path" / "fake"
    path.parent.mkdir(parents=True)
    path.write_text("#!/bin/sh\nprintf 'Go: go1.26.8\\nScanner: fake@v1.9.0\\n'\n")
    path.chmod(0o755)
    assert toolchain.probe_version(fake_tool(), path) == "1.26.8"
    patterned = fake_tool(version_pattern=r"fake@(v[0-9][^\s]*)")
    assert toolchain.probe_version(patterned, path) == "1.9.0"
