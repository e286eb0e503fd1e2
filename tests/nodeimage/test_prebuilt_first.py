"""e2e-kind's node image step, prebuilt first, through the engine's registry mirror.

`ensure_node_image` (the step `KindProvider.up` runs before `kind create`) pulls the
node image kind's release names, by the digest published.py pins, and turns to our
own node image only when that pull fails. Docker Hub does not answer on the machines
that develop Brokkr, so the pull goes to a registry mirror the engine is configured
to use: a registry started here at the mirror's address (tests/fixtures/mirror.py)
serves a small image as `kindest/node:<pinned tag>`, and the step is given that
image's digest in place of the pin (the pin itself stays in published.py). The
image is never booted: these tests are about which path the step takes.

Our own node image is never built here: a cold build takes the better part of an
hour, so a stand-in takes the build path's place and records that it was entered
and what the step had said by then. No kind cluster is needed, so these tests live
outside tests/e2e_kind and run in `nox -s tests`, in seconds.
"""

from __future__ import annotations

import hashlib
import json
import re
import tarfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from brokkr_dev.base.localnet import wait_for
from brokkr_dev.base.log import Log
from brokkr_dev.containers.engine import Engine
from brokkr_dev.containers.nodeimage import published
from brokkr_dev.containers.nodeimage.build import ensure_node_image
from tests.fixtures.mirror import MirrorEngine
from tests.fixtures.registry import LocalRegistry, Request

OUR_IMAGE = "brokkr.local/kind-node:stand-in"
LOG_TIMEOUT = 10.0  # the registry logs a request just after answering it


@dataclass
class BuildPathStandIn:
    """Takes the place of our node image's build path (`our_node_image`): records each
    time it is entered, with every line the step had logged by then."""

    lines: list[str]
    entered: list[tuple[str, list[str]]] = field(default_factory=list)

    def __call__(self, engine: Engine, log: Log, arch: str) -> str:
        self.entered.append((arch, list(self.lines)))
        return OUR_IMAGE


@dataclass
class MirrorImages:
    """Images in the engine's mirror and the engine; the engine's are removed after."""

    engine: Engine
    mirror: LocalRegistry
    work: Path
    created: list[str] = field(default_factory=list)

    def push_small_image(self) -> tuple[str, str]:
        """One file, imported and pushed to the mirror as kindest/node:<pinned tag>, then
        removed from the engine so that only a pull can bring it back. Its content is
        new each time, so no engine or registry can hold it from an earlier run.
        Returns (manifest digest, image ID)."""
        marker = self.work / "marker"
        marker.write_text(f"{uuid.uuid4()}\n")
        rootfs = self.work / "rootfs.tar"
        with tarfile.open(rootfs, "w") as tar:
            tar.add(marker, arcname="marker")
        repository = f"{self.mirror.host}/{published.repository()}"
        target = f"{repository}:{published.tag()}"
        self.created.append(target)
        self.engine.docker("import", str(rootfs), target)
        self.engine.docker("push", "--quiet", target)
        image_id = self.engine.docker("image", "inspect", "--format", "{{.Id}}", target).strip()
        repo_digests = json.loads(
            self.engine.docker("image", "inspect", "--format", "{{json .RepoDigests}}", target)
        )
        digests = [d.partition("@")[2] for d in repo_digests if d.startswith(f"{repository}@")]
        assert digests, f"the push left no digest of {target}: {repo_digests}"
        self.engine.docker("image", "rm", target)
        return digests[0], image_id

    def remove_afterwards(self, reference: str) -> None:
        self.created.append(reference)

    def manifest_asked(self, digest: str, status: int) -> None:
        """Wait until the mirror's access log shows the engine asking for kindest/node's
        manifest by `digest` and getting `status` (GET, or HEAD as containerd asks first)."""
        path = f"/v2/{published.repository()}/manifests/{digest}"
        wanted = {Request(method, path, status) for method in ("GET", "HEAD")}
        try:
            wait_for(lambda: wanted & set(self.mirror.answered()), LOG_TIMEOUT, path)
        except TimeoutError:
            asked = [r for r in self.mirror.answered() if "/manifests/" in r.path]
            pytest.fail(f"the mirror never answered {path} with {status}; manifests asked: {asked}")


@pytest.fixture
def images(
    mirror_engine: MirrorEngine, engine_mirror: LocalRegistry, tmp_path: Path
) -> Iterator[MirrorImages]:
    made = MirrorImages(mirror_engine.engine, engine_mirror, tmp_path)
    yield made
    for reference in reversed(made.created):
        made.engine.docker("image", "rm", reference, check=False)


@pytest.fixture
def empty_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The machine-wide cache (pinned tools, root filesystems, saved node images),
    empty for this test: whatever the step built or downloaded would land here."""
    cache = tmp_path / "cache"
    cache.mkdir()
    monkeypatch.setenv("BROKKR_CACHE_DIR", str(cache))
    return cache


def test_the_mirror_serves_the_pinned_digest_so_the_step_pulls_it_and_builds_nothing(
    images: MirrorImages, empty_cache: Path
) -> None:
    digest, image_id = images.push_small_image()
    reference = published.with_digest(digest)
    assert published.digest(reference) != published.digest()  # never kind's real image
    images.remove_afterwards(published.by_digest(reference))
    lines: list[str] = []
    build_path = BuildPathStandIn(lines)

    chosen = ensure_node_image(
        images.engine, lines.append, published_image=reference, fallback=build_path
    )

    assert chosen == f"kindest/node@{digest}"
    assert lines == [
        f"node image: {chosen} (kind {published.KIND_VERSION}'s own, pulled; nothing built)"
    ]
    assert build_path.entered == []
    assert sorted(empty_cache.rglob("*")) == []  # no node binary, root filesystem or tar
    # The engine holds the very image pushed, and asked the mirror for it.
    assert images.engine.docker("image", "inspect", "--format", "{{.Id}}", chosen).strip() == (
        image_id
    )
    images.manifest_asked(digest, 200)


@pytest.mark.parametrize("mirror_holds", ["another digest under the pinned tag", "nothing"])
def test_a_digest_the_mirror_lacks_sends_the_step_to_the_build_path_saying_why(
    images: MirrorImages, empty_cache: Path, mirror_holds: str
) -> None:
    if mirror_holds != "nothing":
        images.push_small_image()
    missing = "sha256:" + hashlib.sha256(uuid.uuid4().bytes).hexdigest()
    reference = published.with_digest(missing)
    images.remove_afterwards(published.by_digest(reference))  # in case it was pulled after all
    lines: list[str] = []
    build_path = BuildPathStandIn(lines)

    chosen = ensure_node_image(
        images.engine, lines.append, arch="amd64", published_image=reference, fallback=build_path
    )

    assert chosen == OUR_IMAGE
    assert [arch for arch, _ in build_path.entered] == ["amd64"]  # entered once
    said = build_path.entered[0][1]  # what the step had said when it entered
    assert len(said) == 1, said
    why = re.fullmatch(
        rf"node image: cannot pull kindest/node@{missing} \((?P<reason>.+)\); "
        r"using our own node image instead",
        said[0],
    )
    assert why, said[0]
    assert why["reason"].startswith(f"mirrors http://{images.mirror.host}")  # asked first
    images.manifest_asked(missing, 404)  # the engine asked the mirror, which lacked it
    assert sorted(empty_cache.rglob("*")) == []
