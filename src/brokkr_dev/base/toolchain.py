"""Pinned external CLI tools: read the manifest, find or install each one into bin/.

The manifest is `tools.toml` at the repository root; its header explains the fields
and the order in which installation methods are tried.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import tomllib
import urllib.request
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from brokkr_dev.base import paths
from brokkr_dev.base.commands import run
from brokkr_dev.base.errors import AutomationError
from brokkr_dev.base.log import Log

VERSION_PATTERN = re.compile(r"v?(\d+\.\d+\.\d+(?:[-+][0-9A-Za-z.-]+)?)")


class ToolError(AutomationError):
    """A tool could not be found or installed; the message says what to do."""


@dataclass(frozen=True)
class Archive:
    """An official release download and the checksums pinned for it."""

    url: str
    member: str | None = None
    sha256: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Tool:
    """One entry of the manifest."""

    name: str
    version: str
    binary: str
    version_args: tuple[str, ...]
    # A regular expression whose first group is the version, for tools whose version
    # output starts with other numbers (govulncheck prints the Go release first).
    version_pattern: str | None = None
    go_module: str | None = None
    # The Go module version to install when it differs from the release version
    # (Prometheus 3.x ships as module versions v0.3xx.y).
    go_version: str | None = None
    go_ldflags: str = ""
    # Extra environment for the Go build (e.g. GOEXPERIMENT), as tools.toml `go_env`.
    go_env: dict[str, str] = field(default_factory=dict)
    go_dir: str | None = None  # a wrapper module in the repo, built with `go build`
    # Build go_module with `go build` inside a writable copy of the module itself, for
    # modules whose go.mod has replace directives (`go install mod@version` refuses them).
    go_build_in_module: bool = False
    # With go_build_in_module: extra `replace` directives for that copy, old -> new@version
    # (a dependency version the module proxy refuses, swapped for a served one).
    go_replace: dict[str, str] = field(default_factory=dict)
    # With go_dir: the main packages to build there (default "."). Each one yields a
    # binary named after its last path element; all of them share the tool's version.
    go_packages: tuple[str, ...] = ()
    pip_package: str | None = None
    # A Python CLI installed with its dependencies into a venv of its own (not the
    # project's environment), e.g. "checkov=={plain}".
    pip_venv: str | None = None
    archive: Archive | None = None
    # Built only when something asks for it by name (the kind node image's parts),
    # not by `tools.install` of everything.
    on_demand: bool = False
    # "publish": a release builds, signs or uploads with it; "test": it runs only on
    # developer and CI machines. The security scan judges them differently.
    role: str | None = None
    # False: never linked into bin/; used from its cache directory (`ensure` returns
    # that path). For entries whose binary names other entries use too (the kind
    # node's Kubernetes, one entry per minor, beside [kubernetes]).
    bin_link: bool = True

    def expand(self, template: str) -> str:
        """Fill {version}, {plain}, {major}, {minor}, {os} and {arch} in a manifest string."""
        os_name, arch = host_platform()
        plain = self.version.lstrip("v")
        major, minor = ([*plain.split("."), "", ""])[:2]
        return template.format(
            version=self.version,
            plain=plain,
            major=major,
            minor=minor,
            os=os_name,
            arch=arch,
        )

    @property
    def companions(self) -> tuple[str, ...]:
        """Binaries built with the main one from go_packages (linked into bin/ too)."""
        names = (package.rstrip("/").rsplit("/", 1)[-1] for package in self.go_packages)
        return tuple(name for name in names if name != self.binary)


@dataclass(frozen=True)
class ToolStatus:
    """What `tools.status` reports for one tool."""

    name: str
    pinned: str
    found: str | None
    path: Path | None
    status: str


def host_platform() -> tuple[str, str]:
    """The Go names of this machine's OS and CPU architecture."""
    machine = platform.machine().lower()
    arch = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(
        machine, machine
    )
    return sys.platform, arch


def load_manifest(path: Path = paths.TOOLS_MANIFEST) -> dict[str, Tool]:
    """Parse tools.toml into Tool records, with a clear error for a malformed entry."""
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError as exc:
        raise ToolError(f"tool manifest {path} is missing") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ToolError(f"tool manifest {path} is not valid TOML: {exc}") from exc
    tools = {}
    for name, entry in raw.items():
        try:
            archive = entry.get("archive")
            tools[name] = Tool(
                name=name,
                version=str(entry["version"]),
                binary=str(entry.get("binary", name)),
                version_args=tuple(entry.get("version_args", ["--version"])),
                version_pattern=entry.get("version_pattern"),
                go_module=entry.get("go_module"),
                go_version=entry.get("go_version"),
                go_ldflags=entry.get("go_ldflags", ""),
                go_env=_string_table(entry.get("go_env", {}), f"[{name}] go_env"),
                go_dir=entry.get("go_dir"),
                go_build_in_module=bool(entry.get("go_build_in_module", False)),
                go_replace=_string_table(entry.get("go_replace", {}), f"[{name}] go_replace"),
                go_packages=tuple(entry.get("go_packages", ())),
                pip_package=entry.get("pip_package"),
                pip_venv=entry.get("pip_venv"),
                on_demand=bool(entry.get("on_demand", False)),
                role=_role(entry.get("role"), name),
                bin_link=bool(entry.get("bin_link", True)),
                archive=Archive(
                    url=archive["url"],
                    member=archive.get("member"),
                    sha256=dict(archive.get("sha256", {})),
                )
                if archive
                else None,
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise ToolError(
                f"{path}: entry [{name}] is missing or has a wrong field ({exc}); "
                "every entry needs at least `version`"
            ) from exc
    return tools


def _string_table(raw: object, where: str) -> dict[str, str]:
    if not isinstance(raw, dict) or not all(
        isinstance(key, str) and isinstance(value, str) for key, value in raw.items()
    ):
        raise TypeError(f'{where} must be a table of strings, e.g. {{ GOEXPERIMENT = "x" }}')
    return dict(raw)


ROLES = ("publish", "test")


def _role(raw: object, name: str) -> str | None:
    if raw is None or raw in ROLES:
        return None if raw is None else str(raw)
    raise TypeError(f"[{name}] role = {raw!r}; use one of {', '.join(map(repr, ROLES))}")


def normalise_version(text: str) -> str | None:
    """Extract `X.Y.Z[-pre]` from a tool's version output, or None."""
    match = VERSION_PATTERN.search(text)
    return match.group(1) if match else None


def probe_version(tool: Tool, binary: Path) -> str | None:
    """Run the binary's version command and return the version it reports.

    A pip_venv tool is identified by the package metadata of the venv its script
    lives in: starting a large Python CLI only to print its version can take a
    minute on a busy machine.
    """
    if tool.pip_venv:
        return _venv_version(tool, binary)
    if not tool.version_args:
        return _cache_version(tool, binary)
    try:
        result = subprocess.run(
            [str(binary), *tool.version_args],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    output = result.stdout + result.stderr
    if tool.version_pattern:
        match = re.search(tool.version_pattern, output)
        return normalise_version(match.group(1)) if match else None
    return normalise_version(output)


def _cache_version(tool: Tool, binary: Path) -> str | None:
    """The version of a program that prints none (Flux's controllers): only the
    installer's own build counts, and its cache directory is named after the version."""
    built = cache_root(tool) / "bin" / tool.binary
    if binary.exists() and built.exists() and binary.resolve() == built.resolve():
        return normalise_version(tool.version)
    return None


def _venv_version(tool: Tool, binary: Path) -> str | None:
    distribution = re.split(r"[=<>!~\[ ]", tool.pip_venv or "", maxsplit=1)[0]
    normalised = re.sub(r"[-_.]+", "_", distribution).lower()
    venv = binary.resolve().parent.parent
    for info in venv.glob("lib/python*/site-packages/*.dist-info"):
        name, _, version = info.name.removesuffix(".dist-info").rpartition("-")
        if re.sub(r"[-_.]+", "_", name).lower() == normalised:
            return normalise_version(version)
    return None


def matches(tool: Tool, found: str | None) -> bool:
    """True when a found version is the pinned one."""
    return found is not None and found == tool.version.lstrip("v")


def cache_root(tool: Tool) -> Path:
    """Where builds and downloads of this exact tool version are kept."""
    return paths.cache_dir() / "tools" / tool.name / tool.version


def status(tool: Tool, bin_dir: Path = paths.BIN_DIR) -> ToolStatus:
    """Report where the tool is and whether its version matches, without installing."""
    if not tool.bin_link:
        return _cache_status(tool)
    for candidate in _candidates(tool, bin_dir):
        found = probe_version(tool, candidate)
        if matches(tool, found):
            return ToolStatus(tool.name, tool.version, found, candidate, "ok")
    local = bin_dir / tool.binary
    if local.exists():
        found = probe_version(tool, local)
        return ToolStatus(tool.name, tool.version, found, local, "wrong version")
    on_path = shutil.which(tool.binary)
    if on_path:
        found = probe_version(tool, Path(on_path))
        return ToolStatus(tool.name, tool.version, found, Path(on_path), "wrong version")
    return ToolStatus(tool.name, tool.version, None, None, "missing")


def _cache_status(tool: Tool) -> ToolStatus:
    """The status of a tool used from its cache directory only (bin_link = false)."""
    cached = _cached_binary(tool)
    if cached is None:
        return ToolStatus(tool.name, tool.version, None, None, "missing")
    found = probe_version(tool, cached)
    verdict = "ok" if matches(tool, found) else "wrong version"
    return ToolStatus(tool.name, tool.version, found, cached, verdict)


def _candidates(tool: Tool, bin_dir: Path) -> Iterable[Path]:
    local = bin_dir / tool.binary
    if local.exists():
        yield local
    on_path = shutil.which(tool.binary, path=_path_without(bin_dir))
    if on_path:
        yield Path(on_path)


def _path_without(directory: Path) -> str:
    keep = [p for p in os.environ.get("PATH", "").split(os.pathsep) if Path(p) != directory]
    return os.pathsep.join(keep)


def ensure(
    tool: Tool,
    bin_dir: Path = paths.BIN_DIR,
    log: Log = print,
    go: str | None = None,
) -> Path:
    """Make bin/<binary> the pinned version of the tool and return its path.

    A second call finds the tool in bin/ and does nothing. A tool with bin_link false
    is built (once) into its cache directory and that path is returned; bin/ and
    PATH are not looked at.
    """
    if not tool.bin_link:
        return _ensure_cached(tool, log, go)
    bin_dir.mkdir(parents=True, exist_ok=True)
    link = bin_dir / tool.binary
    for candidate in _candidates(tool, bin_dir):
        if _has_companions(tool, candidate) and matches(tool, probe_version(tool, candidate)):
            if candidate != link:
                _link(candidate, link)
                log(f"{tool.name} {tool.version}: using {candidate}")
            _link_companions(tool, candidate, bin_dir)
            return link

    cached = _cached_binary(tool)
    if cached is None:
        cached = _install(tool, log, go=go if go is not None else shutil.which("go"))
    found = probe_version(tool, cached)
    if not matches(tool, found):
        raise ToolError(
            f"{tool.name}: installed {cached} reports version {found!r}, "
            f"expected {tool.version}; delete {cache_root(tool)} and retry"
        )
    _link(cached, link)
    _link_companions(tool, cached, bin_dir)
    log(f"{tool.name} {tool.version}: installed at {link}")
    return link


def _ensure_cached(tool: Tool, log: Log, go: str | None) -> Path:
    cached = _cached_binary(tool)
    if cached is None:
        cached = _install(tool, log, go=go if go is not None else shutil.which("go"))
        log(f"{tool.name} {tool.version}: installed at {cached.parent}")
    found = probe_version(tool, cached)
    if not matches(tool, found):
        raise ToolError(
            f"{tool.name}: {cached} reports version {found!r}, expected {tool.version}; "
            f"delete {cache_root(tool)} and retry"
        )
    return cached


def _has_companions(tool: Tool, binary: Path) -> bool:
    directory = binary.resolve().parent
    return all((directory / name).exists() for name in tool.companions)


def _link_companions(tool: Tool, binary: Path, bin_dir: Path) -> None:
    directory = binary.resolve().parent
    for name in tool.companions:
        link = bin_dir / name
        if not (link.exists() and link.resolve() == (directory / name).resolve()):
            _link(directory / name, link)


def _cached_binary(tool: Tool) -> Path | None:
    candidate = cache_root(tool) / "bin" / tool.binary
    return candidate if candidate.exists() and _has_companions(tool, candidate) else None


def _link(target: Path, link: Path) -> None:
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(target.resolve())


def _install(tool: Tool, log: Log, go: str | None) -> Path:
    tried = []
    if go and (tool.go_module or tool.go_dir):
        return _go_install(tool, go, log)
    if tool.go_module or tool.go_dir:
        tried.append(
            "Go (not found: install Go 1.22+ from https://go.dev/dl or `apt-get install golang`)"
        )
    if tool.pip_venv:
        return _venv_install(tool, log)
    if tool.pip_package:
        return _pip_install(tool, log)
    if tool.archive:
        return download(tool, log)
    raise ToolError(
        f"{tool.name} {tool.version} is not installed and cannot be installed here: "
        + "; ".join(tried or ["no install method in tools.toml"])
    )


def cross_build(
    tool: Tool,
    arch: str,
    log: Log = print,
    go: str | None = None,
    bin_dir: Path = paths.BIN_DIR,
    *,
    static: bool = False,
) -> Path:
    """The directory of the tool's binaries built for linux/`arch`, built once with Go
    into its own cache directory. For this machine's architecture that is `ensure`'s
    build (linked into `bin_dir`), unless `static` asks for a build that needs no C
    library (for an image without one); for another architecture (the arm64 node
    image on an amd64 machine) the build is always static, and nothing probes the
    version: this machine may not run the binaries."""
    if arch == host_platform()[1] and not static:
        return ensure(tool, bin_dir=bin_dir, log=log, go=go).resolve().parent
    target = cache_root(tool) / f"linux-{arch}" / "bin"
    if all((target / name).exists() for name in (tool.binary, *tool.companions)):
        return target
    go = go or shutil.which("go")
    if go is None or not (tool.go_module or tool.go_dir):
        raise ToolError(
            f"{tool.name} {tool.version} for linux/{arch} is built with Go from its "
            f"{'module' if tool.go_module else 'source'}: install Go 1.22+ "
            "(https://go.dev/dl or `apt-get install golang`)"
            if go is None
            else f"{tool.name}: only tools built with Go can be built for linux/{arch}"
        )
    partial = target.with_name("bin.partial")
    shutil.rmtree(partial, ignore_errors=True)
    _go_install(tool, go, log, target=partial, arch=arch)
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)
    return target


def _go_install(
    tool: Tool, go: str, log: Log, target: Path | None = None, arch: str | None = None
) -> Path:
    """Build the tool into `target` (its cache's bin/ by default); with `arch`, for
    linux/`arch`, statically (no C toolchain for that architecture is needed)."""
    target = target or cache_root(tool) / "bin"
    target.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "GOBIN": str(target),
        "GOFLAGS": "-mod=mod -buildvcs=false",
        **{key: tool.expand(value) for key, value in tool.go_env.items()},
    }
    if arch:
        env.update(GOOS="linux", GOARCH=arch, CGO_ENABLED="0")
    ldflags = tool.expand(tool.go_ldflags)
    if tool.go_dir:
        source = paths.REPO_ROOT / tool.go_dir
        log(f"{tool.name} {tool.version}: go build in {source} (first time only)")
        if tool.go_packages:
            # `-o DIR/` with several main packages writes one binary per package.
            command = [go, "build", "-trimpath", "-ldflags", ldflags, "-o", f"{target}/"]
            command.extend(tool.go_packages)
        else:
            output = str(target / tool.binary)
            command = [go, "build", "-trimpath", "-ldflags", ldflags, "-o", output, "."]
        _run(command, tool, cwd=source, env=env)
    elif tool.go_build_in_module:
        _go_build_in_module(tool, go, env, ldflags, log, output=target / tool.binary)
    else:
        module = f"{tool.go_module}@{tool.go_version or tool.version}"
        log(f"{tool.name} {tool.version}: go install {module} (first time only)")
        with tempfile.TemporaryDirectory(prefix="brokkr-gopath-") as gopath:
            if arch:
                # `go install` refuses GOBIN for another architecture; it writes to
                # $GOPATH/bin/linux_<arch>/ instead (to $GOPATH/bin/ for this
                # machine's), so GOPATH is a scratch directory (and the module cache
                # stays where it is).
                modcache = _go_output([go, "env", "-json", "GOMODCACHE"], tool, env, "GOMODCACHE")
                env.pop("GOBIN")
                env.update(GOPATH=gopath, GOMODCACHE=modcache)
            _run([go, "install", "-trimpath", "-ldflags", ldflags, module], tool, env=env)
            if arch:
                installed = Path(gopath) / "bin"
                if arch != host_platform()[1]:
                    installed /= f"linux_{arch}"
                for built in installed.iterdir():
                    shutil.move(built, target / built.name)
        built = target / Path(tool.go_module or "").name
        if built.name != tool.binary and built.exists():
            built.rename(target / tool.binary)
    return target / tool.binary


def _go_build_in_module(
    tool: Tool, go: str, env: dict[str, str], ldflags: str, log: Log, *, output: Path
) -> None:
    """`go build` the module's main package inside a scratch copy of the module.

    Replaces by local path point at nested modules (e.g. `./api`), which the module
    proxy's zip leaves out: they are dropped, so those requirements resolve from the
    proxy at the version the go.mod requires. Then go_replace is applied.
    """
    module = f"{tool.go_module}@{tool.go_version or tool.version}"
    log(f"{tool.name} {tool.version}: go build in a copy of {module} (first time only)")
    source = module_dir(tool, go, env)
    scratch = cache_root(tool) / "src"
    if scratch.exists():
        shutil.rmtree(scratch)
    shutil.copytree(source, scratch)
    for path in [scratch, *scratch.rglob("*")]:  # the module cache is read-only
        path.chmod(path.stat().st_mode | 0o200)
    edits = [f"-dropreplace={old}" for old in _local_replaces(tool, go, env, scratch)]
    edits += [f"-replace={old}={new}" for old, new in tool.go_replace.items()]
    if edits:
        _run([go, "mod", "edit", *edits], tool, cwd=scratch, env=env)
    build = [go, "build", "-trimpath", "-ldflags", ldflags, "-o", str(output), "."]
    _run(build, tool, cwd=scratch, env=env)
    shutil.rmtree(scratch)


def module_dir(tool: Tool, go: str | None = None, env: dict[str, str] | None = None) -> Path:
    """The pinned module's files in the Go module cache, downloaded through the module
    proxy the first time (read-only; e.g. the CRDs a controller ships)."""
    go = go or shutil.which("go")
    if go is None or not tool.go_module:
        raise ToolError(f"{tool.name}: needs Go and a go_module to find its module's files")
    module = f"{tool.go_module}@{tool.go_version or tool.version}"
    download = [go, "mod", "download", "-json", module]
    return Path(_go_output(download, tool, dict(env or os.environ), "Dir"))


def _local_replaces(tool: Tool, go: str, env: dict[str, str], module_dir: Path) -> list[str]:
    replaces = _go_output([go, "mod", "edit", "-json"], tool, env, "Replace", cwd=module_dir) or []
    return [r["Old"]["Path"] for r in replaces if r["New"]["Path"].startswith(("./", "../"))]


def _go_output(
    command: list[str], tool: Tool, env: dict[str, str], key: str, cwd: Path | None = None
) -> Any:
    """One field of a go command's -json output (None when the field is absent)."""
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=cwd, check=False)
    if done.returncode == 0:
        try:
            return json.loads(done.stdout).get(key)
        except json.JSONDecodeError:
            pass
    tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-15:])
    raise ToolError(f"{tool.name}: `{' '.join(command)}` failed:\n{tail}")


def _pip_install(tool: Tool, log: Log) -> Path:
    target = cache_root(tool)
    spec = tool.expand(tool.pip_package or "")
    log(f"{tool.name} {tool.version}: pip install {spec} (first time only)")
    with tempfile.TemporaryDirectory(dir=target.parent if target.parent.exists() else None) as tmp:
        # uv-made virtual environments have no pip; uv itself is on PATH there.
        uv = shutil.which("uv")
        installer = [uv, "pip"] if uv else [sys.executable, "-m", "pip"]
        _run([*installer, "install", "--quiet", "--no-deps", "--target", tmp, spec], tool)
        found = next((p for p in Path(tmp).rglob(tool.binary) if p.is_file()), None)
        if found is None:
            raise ToolError(f"{tool.name}: pip package {spec} has no `{tool.binary}` binary")
        (target / "bin").mkdir(parents=True, exist_ok=True)
        final = target / "bin" / tool.binary
        shutil.copy2(found, final)
        final.chmod(0o755)
    return final


def _venv_install(tool: Tool, log: Log) -> Path:
    """Install the package and its dependencies into cache/<tool>/<version>/venv.

    bin/<binary> is linked last, so an interrupted install is redone, not trusted.
    """
    target = cache_root(tool)
    venv = target / "venv"
    spec = tool.expand(tool.pip_venv or "")
    log(f"{tool.name} {tool.version}: pip install {spec} into its own venv (first time only)")
    if venv.exists():
        shutil.rmtree(venv)
    target.mkdir(parents=True, exist_ok=True)
    uv = shutil.which("uv")
    python = str(venv / "bin" / "python")
    if uv:
        _run([uv, "venv", "--quiet", "--python", sys.executable, str(venv)], tool)
        _run([uv, "pip", "install", "--quiet", "--python", python, spec], tool)
    else:
        _run([sys.executable, "-m", "venv", str(venv)], tool)
        _run([python, "-m", "pip", "install", "--quiet", spec], tool)
    script = venv / "bin" / tool.binary
    if not script.exists():
        raise ToolError(f"{tool.name}: pip package {spec} installed no `{tool.binary}` script")
    (target / "bin").mkdir(exist_ok=True)
    _link(script, target / "bin" / tool.binary)
    return target / "bin" / tool.binary


def download(tool: Tool, log: Log = print, opener: Callable = urllib.request.urlopen) -> Path:
    """Fetch the official release archive, verify its SHA-256, unpack the binary."""
    if tool.archive is None:
        raise ToolError(f"{tool.name}: tools.toml has no `archive` entry to download")
    os_name, arch = host_platform()
    key = f"{os_name}-{arch}"
    expected = tool.archive.sha256.get(key)
    url = tool.expand(tool.archive.url)
    if not expected:
        raise ToolError(
            f"{tool.name} {tool.version}: no SHA-256 is pinned for {key} in tools.toml, "
            f"so {url} will not be trusted. Add `archive.sha256.{key}` from the project's "
            "published checksums, or install Go so the tool can be built from source."
        )
    log(f"{tool.name} {tool.version}: downloading {url}")
    try:
        with opener(url, timeout=120) as response:
            payload = response.read()
    except OSError as exc:
        raise ToolError(
            f"{tool.name}: cannot download {url} ({exc}). Without network access, "
            "install Go (so the tool builds from the module proxy) or place the "
            f"pinned binary on PATH."
        ) from exc
    actual = hashlib.sha256(payload).hexdigest()
    if actual != expected.lower():
        raise ToolError(
            f"{tool.name}: checksum mismatch for {url}: expected sha256 {expected}, "
            f"got {actual}. The download was discarded; do not install it. If the "
            "pinned checksum is right, the file was tampered with or corrupted."
        )
    content = _extract(tool, url, payload)
    target = cache_root(tool) / "bin"
    target.mkdir(parents=True, exist_ok=True)
    final = target / tool.binary
    final.write_bytes(content)
    final.chmod(0o755)
    return final


def _extract(tool: Tool, url: str, payload: bytes) -> bytes:
    member = tool.expand(tool.archive.member) if tool.archive and tool.archive.member else None
    if url.endswith((".tar.gz", ".tgz")):
        with tarfile.open(fileobj=io.BytesIO(payload), mode="r:gz") as archive:
            name = member or tool.binary
            try:
                extracted = archive.extractfile(name)
            except KeyError:
                extracted = None
            if extracted is None:
                raise ToolError(f"{tool.name}: {url} has no member {name}")
            return extracted.read()
    if url.endswith(".zip"):
        with zipfile.ZipFile(io.BytesIO(payload)) as archive:
            return archive.read(member or tool.binary)
    return payload  # a bare binary


def _run(command: list[str], tool: Tool, **kwargs: Any) -> None:
    run(command, hint=f"while installing {tool.name} {tool.version}", **kwargs)


def select(manifest: dict[str, Tool], names: Iterable[str]) -> list[Tool]:
    """The named tools (all but the on-demand ones when none are named), with a clear
    error for a typo."""
    wanted = list(names) or [name for name, tool in manifest.items() if not tool.on_demand]
    unknown = [n for n in wanted if n not in manifest]
    if unknown:
        raise ToolError(
            f"unknown tool(s): {', '.join(unknown)}; known: {', '.join(sorted(manifest))}"
        )
    return [manifest[n] for n in wanted]


def format_table(rows: list[ToolStatus]) -> str:
    """A plain-text table: tool, pinned, found, path, status."""
    header = ("tool", "pinned", "found", "path", "status")
    body = [(r.name, r.pinned, r.found or "-", str(r.path or "-"), r.status) for r in rows]
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)) for row in [header, *body]
    ]
    return "\n".join(line.rstrip() for line in lines)
