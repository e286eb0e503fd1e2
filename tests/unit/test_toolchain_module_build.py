"""A tool built inside a copy of its module (tools.toml `go_build_in_module`), as Flux's
controllers are: their go.mod replaces a nested `./api` module that the module proxy's
zip leaves out, and one dependency version is refused by the proxy.

A real Go build against a module proxy of our own (GOPROXY=file://...), made here
with the layout the Go module proxy protocol defines.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from brokkr_dev.base import toolchain
from brokkr_dev.base.commands import CommandError
from brokkr_dev.base.toolchain import Tool, ToolError
from brokkr_dev.containers import foreignarch

GO = shutil.which("go")  # looked up before the fixture narrows PATH

CONTROLLER_GO_MOD = """module example.test/ctl

go 1.21

replace example.test/ctl/api => ./api

require (
\texample.test/ctl/api v1.0.0
\texample.test/dep v1.0.1
)
"""
CONTROLLER_MAIN = """package main

import (
\t"fmt"

\t"example.test/ctl/api"
\t"example.test/dep"
)

func main() { fmt.Println(api.Name, dep.Name) }
"""


HELLO = {
    "go.mod": "module example.test/hello\n\ngo 1.21\n",
    "main.go": 'package main\n\nimport "fmt"\n\nfunc main() { fmt.Println("hello") }\n',
}


def publish(proxy: Path, module: str, version: str, files: dict[str, str]) -> None:
    """One module version in a file:// module proxy (list, .info, .mod, .zip)."""
    where = proxy / module / "@v"
    where.mkdir(parents=True, exist_ok=True)
    with (where / "list").open("a") as listing:
        listing.write(version + "\n")
    (where / f"{version}.info").write_text(json.dumps({"Version": version}))
    (where / f"{version}.mod").write_text(files["go.mod"])
    with zipfile.ZipFile(where / f"{version}.zip", "w") as archive:
        for name, text in files.items():
            archive.writestr(f"{module}@{version}/{name}", text)


def library(module: str, name: str) -> dict[str, str]:
    package = module.rsplit("/", 1)[-1]
    return {
        "go.mod": f"module {module}\n\ngo 1.21\n",
        f"{package}.go": f'package {package}\n\nconst Name = "{name}"\n',
    }


@pytest.fixture
def proxy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A private module proxy, module cache and tool cache; no checksum database."""
    assert GO, "this test needs the Go toolchain (https://go.dev/dl)"
    root = tmp_path / "proxy"
    # As the real proxy serves it: the nested ./api module is not in the zip.
    publish(
        root,
        "example.test/ctl",
        "v1.0.0",
        {"go.mod": CONTROLLER_GO_MOD, "main.go": CONTROLLER_MAIN},
    )
    publish(root, "example.test/ctl/api", "v1.0.0", library("example.test/ctl/api", "api-1.0.0"))
    publish(root, "example.test/dep", "v1.0.0", library("example.test/dep", "dep-1.0.0"))
    publish(root, "example.test/hello", "v1.0.0", HELLO)
    # example.test/dep v1.0.1, which the go.mod requires, is not served at all.
    monkeypatch.setenv("GOPROXY", root.as_uri())
    monkeypatch.setenv("GOSUMDB", "off")
    monkeypatch.setenv("GOTOOLCHAIN", "local")
    monkeypatch.setenv("GOMODCACHE", str(tmp_path / "modcache"))
    monkeypatch.setenv("BROKKR_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("PATH", f"{tmp_path / 'path'}:/usr/bin:/bin")
    yield root
    # The module cache is read-only; go removes it.
    subprocess.run([GO, "clean", "-modcache"], env=os.environ, check=False, capture_output=True)


def controller(**overrides: object) -> Tool:
    fields: dict = {
        "name": "ctl",
        "version": "v1.0.0",
        "binary": "ctl",
        "version_args": (),
        "go_module": "example.test/ctl",
        "go_build_in_module": True,
        "go_replace": {"example.test/dep": "example.test/dep@v1.0.0"},
        "go_ldflags": "-s -w",
    }
    return Tool(**{**fields, **overrides})


def test_builds_in_a_copy_of_the_module_without_its_local_replaces(proxy: Path, tmp_path: Path):
    tool = controller()
    link = toolchain.ensure(tool, bin_dir=tmp_path / "bin", log=lambda _: None, go=GO)
    printed = subprocess.run([link], capture_output=True, text=True, check=True).stdout
    # ./api came from the proxy at the required version; dep from the go_replace.
    assert printed.split() == ["api-1.0.0", "dep-1.0.0"]
    assert link.resolve() == (toolchain.cache_root(tool) / "bin" / "ctl").resolve()
    assert not (toolchain.cache_root(tool) / "src").exists(), "the scratch copy is left behind"
    # It prints no version: its cache directory names it, and a second call builds nothing.
    assert toolchain.probe_version(tool, link) == "1.0.0"
    log: list[str] = []
    toolchain.ensure(tool, bin_dir=tmp_path / "bin", log=log.append, go=GO)
    assert log == []


def test_a_program_of_the_same_name_elsewhere_is_not_taken_for_the_pinned_one(tmp_path: Path):
    other = tmp_path / "path" / "ctl"
    other.parent.mkdir(parents=True)
    other.write_text("#!/bin/sh\necho v1.0.0\n")
    other.chmod(0o755)
    assert toolchain.probe_version(controller(), other) is None


def test_a_refused_dependency_without_a_replace_names_the_module(proxy: Path, tmp_path: Path):
    with pytest.raises(CommandError, match=r"example.test/dep@v1.0.1"):
        toolchain.ensure(controller(go_replace={}), bin_dir=tmp_path / "bin", go=GO)
    assert not (tmp_path / "bin" / "ctl").exists()


def test_the_manifest_reads_go_build_in_module_and_go_replace(tmp_path: Path):
    manifest = tmp_path / "tools.toml"
    manifest.write_text(
        "[ctl]\nversion = 'v1.0.0'\nversion_args = []\ngo_module = 'example.test/ctl'\n"
        "go_build_in_module = true\ngo_replace = { 'example.test/dep' = 'example.test/dep@v1.0.0' }\n"
    )
    assert toolchain.load_manifest(manifest)["ctl"] == controller(go_ldflags="")
    manifest.write_text("[ctl]\nversion = 'v1.0.0'\ngo_replace = { 'a' = 1 }\n")
    with pytest.raises(ToolError, match=r"\[ctl\] go_replace must be a table of strings"):
        toolchain.load_manifest(manifest)


HOST = toolchain.host_platform()[1]
OTHER = "arm64" if HOST == "amd64" else "amd64"


def architecture(binary: Path) -> str:
    machine = foreignarch.elf_machine(binary.read_bytes()[:20])
    assert machine is not None, f"{binary} is not an ELF file"
    return foreignarch.architecture_of(machine)


def hello_tools(tmp_path: Path) -> list[Tool]:
    """The three ways tools.toml builds with Go: `go install module@version`, `go build`
    in a copy of the module, and `go build` in a folder of the repository (go_dir)."""
    source = tmp_path / "go-dir"
    source.mkdir()
    for name, text in HELLO.items():
        (source / name).write_text(text)
    plain = {"version": "v1.0.0", "version_args": (), "go_ldflags": "-s -w"}
    return [
        Tool(name="hello", binary="hello", go_module="example.test/hello", **plain),
        controller(),
        Tool(name="hello-dir", binary="hello-dir", go_dir=str(source), **plain),
    ]


@pytest.mark.parametrize("way", ["go install", "build in module", "go_dir"])
def test_a_tool_is_cross_built_beside_its_build_for_this_machine(
    proxy: Path, tmp_path: Path, way: str
):
    tool = hello_tools(tmp_path)[["go install", "build in module", "go_dir"].index(way)]
    built = toolchain.cross_build(tool, OTHER, log=lambda _: None, go=GO)
    assert built == toolchain.cache_root(tool) / f"linux-{OTHER}" / "bin"
    assert architecture(built / tool.binary) == OTHER
    assert sorted(p.name for p in built.iterdir()) == [tool.binary]
    # This machine's build is the usual one, in its usual place, and runs here.
    link = toolchain.ensure(tool, bin_dir=tmp_path / "bin", log=lambda _: None, go=GO)
    assert link.resolve().parent == toolchain.cache_root(tool) / "bin"
    assert architecture(link.resolve()) == HOST
    same = toolchain.cross_build(tool, HOST, go=GO, bin_dir=tmp_path / "bin")
    assert same == link.resolve().parent
    # Built once: a second call finds it.
    log: list[str] = []
    assert toolchain.cross_build(tool, OTHER, log=log.append, go=GO) == built
    assert log == []


RESOLVER = {
    "go.mod": "module example.test/resolver\n\ngo 1.21\n",
    # Package net links the C library's resolver whenever cgo is on.
    "main.go": 'package main\n\nimport (\n\t"fmt"\n\t"net"\n)\n\n'
    'func main() { fmt.Println(net.ParseIP("127.0.0.1")) }\n',
}


@pytest.mark.parametrize("way", ["go install", "go_dir"])
def test_a_static_build_for_this_machine_needs_no_c_library(proxy: Path, tmp_path: Path, way: str):
    """For an image without a C library (the collector's on kind): a build of its own
    beside `ensure`'s, that names no program interpreter and runs here."""
    publish(proxy, "example.test/resolver", "v1.0.0", RESOLVER)
    source = tmp_path / "resolver-dir"
    source.mkdir()
    for name, text in RESOLVER.items():
        (source / name).write_text(text)
    plain = {"version": "v1.0.0", "version_args": (), "go_ldflags": "-s -w"}
    tool = (
        Tool(name="resolver", binary="resolver", go_module="example.test/resolver", **plain)
        if way == "go install"
        else Tool(name="resolver", binary="resolver", go_dir=str(source), **plain)
    )
    built = toolchain.cross_build(tool, HOST, log=lambda _: None, go=GO, static=True)
    assert built == toolchain.cache_root(tool) / f"linux-{HOST}" / "bin"
    assert sorted(p.name for p in built.iterdir()) == ["resolver"]
    assert not foreignarch.needs_interpreter(built / "resolver")
    printed = subprocess.run([built / "resolver"], capture_output=True, text=True, check=True)
    assert printed.stdout == "127.0.0.1\n"
    # The usual build stays where `ensure` keeps it.
    link = toolchain.ensure(tool, bin_dir=tmp_path / "bin", log=lambda _: None, go=GO)
    assert link.resolve().parent == toolchain.cache_root(tool) / "bin"


def test_needs_interpreter_tells_a_dynamic_executable_from_a_static_one(tmp_path: Path):
    assert foreignarch.needs_interpreter(Path(sys.executable).resolve())
    text = tmp_path / "script"
    text.write_text("#!/bin/sh\n")
    with pytest.raises(foreignarch.ForeignArchError, match="not a 64-bit ELF file"):
        foreignarch.needs_interpreter(text)


def test_a_tool_without_a_go_build_cannot_be_cross_built(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("BROKKR_CACHE_DIR", str(tmp_path / "cache"))
    tool = Tool(name="py", version="v1.0.0", binary="py", version_args=(), pip_package="py")
    with pytest.raises(ToolError, match=f"only tools built with Go can be built for linux/{OTHER}"):
        toolchain.cross_build(tool, OTHER, go=GO)
