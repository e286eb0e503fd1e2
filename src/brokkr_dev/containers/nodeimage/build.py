"""Build (once) and provide the kind node image that needs no image registry.

The image is a Debian root filesystem (mmdebstrap, cached) with kind's node files
taken from the pinned kind module, our Kubernetes binaries built from the Go module
proxy, and every image the cluster needs saved in /kind/images and imported into
containerd at boot. It is tagged with a digest of all its inputs and saved as a tar
in the cache, so a second run builds nothing, and an engine whose data root was
wiped loads the tar instead of rebuilding.

Root or a normal user in the `docker` group can build it: the root file system is
assembled by assemble.py, as root or in a user namespace (containers/userns.py), and
the finished tarball is imported here, by the docker CLI as the real user.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from brokkr_dev.base import toolchain
from brokkr_dev.base.errors import AutomationError
from brokkr_dev.base.log import Log
from brokkr_dev.containers import baseimages, foreignarch, loadarchive, userns
from brokkr_dev.containers.engine import Engine, EngineError
from brokkr_dev.containers.nodeimage import assemble, kube_versions, published, recipe
from brokkr_dev.containers.nodeimage.kube_versions import NodeKubernetes

FILES = assemble.FILES
OUR_BUILD_FILES = (
    Path(__file__),
    Path(recipe.__file__),
    Path(assemble.__file__),
    *sorted(FILES.iterdir()),
)
PULL_TIMEOUT = 300.0
STANDARD_PATH = assemble.STANDARD_PATH
# The node's own Kubernetes binaries, and how each prints its version.
VERSION_COMMANDS = {
    "/usr/bin/kubelet": ("--version",),
    "/usr/bin/kubectl": ("version", "--client"),
    "/usr/lib/brokkr/kubeadm": ("version", "--output=short"),
}


class NodeImageError(AutomationError):
    """The node image could not be built or found; the message says why."""


def pins(
    manifest: dict[str, toolchain.Tool] | None = None, kubernetes: NodeKubernetes | None = None
) -> dict[str, str]:
    """The versions the node image is made of: the node's Kubernetes (the newest pinned
    minor unless one is given) and the other pinned tools."""
    manifest = manifest or toolchain.load_manifest()
    node = kubernetes or kube_versions.newest(manifest)
    versions = {name: manifest[name].version for name in recipe.PINNED_TOOLS}
    return {recipe.KUBERNETES: node.version, **versions}


def kind_module(version: str) -> Path:
    """kind's source at the pinned version, from the Go module cache (downloaded once)."""
    go = shutil.which("go")
    if go is None:
        raise NodeImageError("building the kind node image needs Go (for kind's node files)")
    result = subprocess.run(
        [go, "mod", "download", "-json", f"sigs.k8s.io/kind@{version}"],
        capture_output=True,
        text=True,
        cwd=tempfile.gettempdir(),
        env={**os.environ, "GOFLAGS": "-mod=mod"},
        check=False,
    )
    try:
        return Path(json.loads(result.stdout)["Dir"])
    except (ValueError, KeyError) as exc:
        raise NodeImageError(
            f"cannot download sigs.k8s.io/kind@{version}: {result.stderr}"
        ) from exc


def node_files(kind_dir: Path) -> Path:
    return kind_dir / "images" / "base" / "files"


def input_files(kind_dir: Path) -> dict[str, bytes]:
    """Every file whose content shapes the image: kind's node files and ours."""
    files = {}
    base = node_files(kind_dir)
    for path in sorted(base.rglob("*")):
        if path.is_file():
            files[f"kind/{path.relative_to(base)}"] = path.read_bytes()
    for path in OUR_BUILD_FILES:
        files[f"brokkr/{path.name}"] = path.read_bytes()
    return files


# The build path: our node image for an architecture, from the engine, its saved tar or
# a build (tests pass a stand-in, since a cold build takes the better part of an hour).
Fallback = Callable[[Engine, Log, str], str]


def ensure_node_image(
    engine: Engine,
    log: Log = print,
    arch: str | None = None,
    published_image: str = published.IMAGE,
    fallback: Fallback | None = None,
    *,
    kubernetes: NodeKubernetes | None = None,
) -> str:
    """The node image to run, prebuilt first: kind's published image (pinned by digest)
    when it is of the Kubernetes minor asked for (the newest pinned by default) and the
    engine has it or can pull it (from Docker Hub or a registry mirror the engine is
    configured to use); else ours (`our_node_image`). Says which path it took and why.

    `published_image` is the pin in published.py; tests name an image of their own in a
    mirror instead, and a user behind a mirror needs neither argument."""
    arch = arch or toolchain.host_platform()[1]
    node = kubernetes or kube_versions.newest()
    build_path = fallback or functools.partial(our_node_image, kubernetes=node)
    own = published.tag(published_image)
    if kube_versions.minor_of(own) != node.minor:
        log(
            f"node image: kind {published.KIND_VERSION}'s own is Kubernetes {own}, not "
            f"{node.minor}: using our own node image ({node.version})"
        )
        return build_path(engine, log, arch)
    pulled = published.by_digest(published_image)
    if _has_image(engine, pulled):
        log(f"node image: {pulled} (kind {published.KIND_VERSION}'s own, already pulled)")
        return pulled
    failure = _pull(engine, pulled)
    if failure is None:
        log(f"node image: {pulled} (kind {published.KIND_VERSION}'s own, pulled; nothing built)")
        return pulled
    mirrors = engine.registry_mirrors()
    tried = f"mirrors {', '.join(mirrors)}, then Docker Hub" if mirrors else "Docker Hub"
    log(f"node image: cannot pull {pulled} ({tried}: {failure}); using our own node image instead")
    return build_path(engine, log, arch)


def our_node_image(
    engine: Engine, log: Log, arch: str, kubernetes: NodeKubernetes | None = None
) -> str:
    """Our node image of that Kubernetes (the newest pinned by default): cached in the
    engine, else loaded from its saved tar, else built."""
    node = kubernetes or kube_versions.newest()
    versions = pins(kubernetes=node)
    kind_dir = kind_module(versions["kind"])
    key = recipe.input_digest(versions, arch, input_files(kind_dir))
    tag = recipe.image_tag(versions, key)
    saved = recipe.cache_dir() / saved_name(versions, arch, key)
    if _has_image(engine, tag):
        log(f"node image: {tag} (built here, cached in the engine)")
        return tag
    if saved.exists():
        log(f"node image: loading {saved.name} (the engine's data root lost it)")
        engine.docker("load", "--input", str(saved), timeout=1800)
        return tag
    log(f"node image: building {tag} (first time on this machine)")
    started = time.monotonic()
    build(
        engine,
        tag=tag,
        key=key,
        versions=versions,
        node=node.tool,
        kind_dir=kind_dir,
        arch=arch,
        log=log,
    )
    log(f"node image: built {tag} in {time.monotonic() - started:.0f} s; saving {saved}")
    _save(engine, tag, saved)
    for old in superseded(saved, versions[recipe.KUBERNETES], arch):
        old.unlink()
    return tag


def checked_node_image(
    engine: Engine, arch: str, kubernetes: NodeKubernetes | None = None, log: Log = print
) -> str:
    """Our node image for `arch` (built once: for another architecture than this
    machine's, its tools are cross-built), with its binaries and config checked by the
    build; then, when QEMU can run `arch` here, each Kubernetes binary runs once in it."""
    tag = our_node_image(engine, log, arch, kubernetes=kubernetes)
    if arch == toolchain.host_platform()[1]:
        return tag
    entry = foreignarch.binfmt_entry(arch)
    if not entry.exists():
        log(f"node image: {tag} not run here (no QEMU for {arch}: {entry} is missing)")
        return tag
    for binary, arguments in VERSION_COMMANDS.items():
        version = engine.docker(
            "run", "--rm", "--platform", f"linux/{arch}", "--entrypoint", binary, tag, *arguments,
            timeout=300,
        )  # fmt: skip
        log(f"node image: {binary} in QEMU ({arch}): {version.strip().splitlines()[0]}")
    return tag


def saved_name(versions: dict[str, str], arch: str, key: str) -> str:
    """node-v1.37.2-amd64-<key>.tar: the saved image, named by its Kubernetes release."""
    return f"node-{versions[recipe.KUBERNETES]}-{arch}-{key}.tar"


def superseded(saved: Path, version: str, arch: str) -> list[Path]:
    """Saved images that `saved` replaces: of the same Kubernetes minor and architecture.
    One per minor is kept, so that a version matrix loads each from its tar."""
    pattern = f"node-v{kube_versions.minor_of(version)}.*-{arch}-*.tar"
    return [old for old in sorted(saved.parent.glob(pattern)) if old != saved]


def _has_image(engine: Engine, reference: str) -> bool:
    return bool(engine.docker("image", "ls", "--quiet", reference, check=False).strip())


def _pull(engine: Engine, reference: str) -> str | None:
    """Pull by digest: None when the engine has the image now, else why not (the last
    line of docker's error: with a mirror, the error of the last registry it tried)."""
    try:
        engine.docker("pull", "--quiet", reference, timeout=PULL_TIMEOUT)
    except EngineError as exc:
        return str(exc).strip().splitlines()[-1][:200]
    if not _has_image(engine, reference):
        return "docker pull succeeded, but the engine does not list the image"
    return None


def _save(engine: Engine, tag: str, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial")
    engine.docker("save", "--output", str(partial), tag, timeout=1800)
    partial.replace(target)


def build(
    engine: Engine,
    *,
    tag: str,
    key: str,
    versions: dict[str, str],
    node: toolchain.Tool,
    kind_dir: Path,
    arch: str,
    log: Log,
) -> None:
    """Assemble the node image of `node` (a [kubernetes-node-1.NN] entry) and import it
    into the engine as `tag`."""
    # Before anything is built: mmdebstrap and the assembly both need it.
    userns.ensure_available("building the kind node image")
    binaries = _tool_binaries(node, log, arch)
    node_tar = _rootfs(recipe.node_rootfs(arch), log)
    tools_tar = _rootfs(recipe.tools_rootfs(arch), log)
    with tempfile.TemporaryDirectory(prefix="brokkr-kind-node-", dir=recipe.cache_dir()) as tmp:
        work = Path(tmp)
        images = recipe.component_images(versions)
        plan = node_assembly(
            node_tar,
            kind_dir,
            binaries=binaries,
            versions=versions,
            images=images,
            work=work,
            arch=arch,
        )
        stamp = _timed(log, "component images")
        component_archive(images, binaries, tools_tar, arch, plan.images_tar)
        stamp()
        stamp = _timed(log, "node root filesystem")
        try:
            assemble.run(plan.save(work / "assembly.json"))
        finally:
            userns.remove_tree(plan.work)  # left behind only if the assembly was killed
        stamp()
        stamp = _timed(log, f"check that every binary is {arch}")
        check_binaries(plan.output, arch)
        stamp()
        stamp = _timed(log, "docker load of the node image")
        _load(engine, plan.output, tag, key, arch)
        stamp()


def check_binaries(tarball: Path, arch: str) -> None:
    """Every ELF file in the node's tarball and in the component images saved inside
    it is built for `arch`: a tool built for the host by mistake fails here, not when a
    node of that architecture first runs it."""
    wrong = foreignarch.wrong_binaries(tarball, arch)
    if wrong:
        listed = "\n  ".join(wrong[:20]) + ("\n  ..." if len(wrong) > 20 else "")
        raise NodeImageError(
            f"the {arch} node image would hold {len(wrong)} binaries of another "
            f"architecture:\n  {listed}\nRebuild those tools for {arch} "
            "(`toolchain.cross_build`), or remove them from the recipe."
        )


def node_assembly(
    rootfs_tar: Path,
    kind_dir: Path,
    *,
    binaries: dict[str, Path],
    versions: dict[str, str],
    images: list[recipe.ComponentImage],
    work: Path,
    arch: str,
) -> assemble.NodeAssembly:
    """What assemble.py does for this image; its paths are below `work`."""
    kind_files = node_files(kind_dir)
    return assemble.NodeAssembly(
        rootfs_tar=rootfs_tar,
        kind_files=kind_files,
        binaries={name: binaries[name] for name in ("kubelet", "kubectl", "kubeadm")},
        images_tar=work / "images.tar",
        texts=node_texts(kind_files, versions, images),
        work=work / "assembly",
        output=work / "node.tar",
        arch=arch,
        host_arch=toolchain.host_platform()[1],
    )


def node_texts(
    kind_files: Path, versions: dict[str, str], images: list[recipe.ComponentImage]
) -> dict[str, str]:
    """The files we generate, by path in the image: containerd's config, the default
    CNI and storage manifests with our images, and kind's version file."""
    by_binary = {i.binary: i.name for i in images}
    return {
        "etc/containerd/config.toml": recipe.containerd_config(
            (kind_files / "etc/containerd/config.toml").read_text(), by_binary["pause"]
        ),
        "kind/manifests/default-cni.yaml": (FILES / "default-cni.yaml")
        .read_text()
        .replace("KUBE_ROUTER_IMAGE", by_binary["kube-router"]),
        "kind/manifests/default-storage.yaml": (FILES / "default-storage.yaml")
        .read_text()
        .replace("LOCAL_PATH_IMAGE", by_binary["local-path-provisioner"])
        .replace("HELPER_IMAGE", recipe.TOOLS_IMAGE),
        "kind/version": versions[recipe.KUBERNETES] + "\n",
    }


def _timed(log: Log, what: str) -> Callable[[], None]:
    started = time.monotonic()
    return lambda: log(f"node image: {what} took {time.monotonic() - started:.0f} s")


def _tool_binaries(node: toolchain.Tool, log: Log, arch: str) -> dict[str, Path]:
    """name -> built binary, for `arch`, of the node's Kubernetes and every other pinned
    tool the node needs (built once)."""
    manifest = toolchain.load_manifest()
    found: dict[str, Path] = {}
    for tool in (node, *(manifest[name] for name in recipe.IMAGE_TOOLS)):
        name = tool.name
        started = time.monotonic()
        try:
            directory = toolchain.cross_build(tool, arch, log=log)
        except toolchain.ToolError as exc:
            raise NodeImageError(str(exc)) from exc
        elapsed = time.monotonic() - started
        if elapsed > 5:
            log(f"node image: {name} {tool.version} for {arch} took {elapsed:.0f} s")
        for binary in (tool.binary, *tool.companions):
            found[binary] = directory / binary
    return found


def _rootfs(image: baseimages.BaseImage, log: Log) -> Path:
    tarball = image.tarball(recipe.cache_dir())
    if not tarball.exists():
        started = time.monotonic()
        baseimages.build_rootfs(image, tarball, log)
        log(
            f"node image: mmdebstrap of {len(image.packages)} packages took {time.monotonic() - started:.0f} s"
        )
    return tarball


def component_archive(
    images: list[recipe.ComponentImage],
    binaries: dict[str, Path],
    tools_tar: Path,
    arch: str,
    output: Path,
) -> None:
    """The images the node imports at boot, as one archive for `ctr images import`:
    each is the small network-tools root filesystem plus a layer with its binary (the
    base layer is stored once), and each config names `arch`."""
    layers = output.parent / "layers"
    layers.mkdir(exist_ok=True)
    env = (f"PATH={STANDARD_PATH}",)
    archived = []
    for image in images:
        if not image.binary:
            archived.append(loadarchive.ArchiveImage(image.name, (tools_tar,), env))
            continue
        inside = f"usr/local/bin/{image.binary}"
        layer = loadarchive.binary_layer(
            binaries[image.binary], inside, layers / f"{image.binary}.tar"
        )
        archived.append(
            loadarchive.ArchiveImage(image.name, (tools_tar, layer), env, (f"/{inside}",))
        )
    loadarchive.write(output, archived, arch)


def _load(engine: Engine, tarball: Path, tag: str, key: str, arch: str) -> None:
    """The node tarball as one layer of an image whose config names `arch`, loaded
    into the engine as `tag`. The archive is written to a file before the engine
    reads it, so a failed assembly cannot leave a truncated image under the tag; the
    loaded image's platform is checked."""
    archive = tarball.with_name("node-image.tar")
    loadarchive.write(
        archive,
        [
            loadarchive.ArchiveImage(
                tag=tag,
                layers=(tarball,),
                # (no STOPSIGNAL: kind removes nodes with a kill anyway)
                env=("container=docker",),
                entrypoint=("/usr/local/bin/entrypoint", "/sbin/init"),
                labels={recipe.KEY_LABEL: key},
            )
        ],
        arch,
    )
    tarball.unlink()  # the archive holds it now; the disk need not hold it twice
    engine.docker("load", "--input", str(archive), timeout=1800)
    platform = f"linux/{arch}"
    found = engine.docker("image", "inspect", "--format", "{{.Os}}/{{.Architecture}}", tag)
    if found.strip() != platform:
        raise NodeImageError(f"{tag} was loaded as {found.strip()}, not {platform}")
