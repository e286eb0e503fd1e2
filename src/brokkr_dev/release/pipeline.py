"""The release steps, run in order; each first checks what is already published.

Every step is idempotent: it reads the registry (by digest) and skips work that is
done, so a run that failed midway (the registry dropped the connection, the machine
stopped) completes with the very same command. A published image tag or chart
version is never overwritten; floating tags move by re-pointing the same manifest.
"""

from __future__ import annotations

import functools
import json
import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from brokkr_dev.base import git, paths
from brokkr_dev.base.commands import run
from brokkr_dev.base.log import Log
from brokkr_dev.containers import baseimages, images
from brokkr_dev.containers.podman import ContainerError
from brokkr_dev.containers.podman import podman as podman_command
from brokkr_dev.release import ReleaseError, attestations, chart_images, notes, provenance
from brokkr_dev.release.assets import content_type, release_assets, vex_name
from brokkr_dev.release.attestations import CYCLONEDX, OPENVEX, SPDX
from brokkr_dev.release.github import Asset, GitHub
from brokkr_dev.release.plan import ChartPlan, ImagePlan, Options, Plan
from brokkr_dev.release.provenance import Builder, DescribesInputs, Material
from brokkr_dev.release.registry import Registry, is_loopback
from brokkr_dev.release.signing import Signer
from brokkr_dev.release.stamp import stamp_all
from brokkr_dev.release.tags import Action, release_tags
from brokkr_dev.release.version import parse_released, previous_release
from brokkr_dev.scan import vex
from brokkr_dev.scan.policy import load_accepted

# name ("brokkr-broker"), platforms -> local manifest list reference holding them
ImageBuilder = Callable[[str, Sequence[str]], str]
STEPS = (
    "stamp", "images", "tags", "charts", "sign", "provenance", "sbom", "vex", "notes", "assets",
    "github", "git-tag",
)  # fmt: skip
COMMAND_TIMEOUT = 1800
# The publishing tools whose binaries every provenance names (tools.toml).
PROVENANCE_TOOLS = ("helm", "cosign", "syft")
ACCEPTED_FINDINGS = "security/accepted.toml"
# The passphrase of the Helm signing key (--helm-key), given to helm on stdin.
HELM_KEY_UNLOCK_ENV = "BROKKR_HELM_KEY_PASSPHRASE"
SCAN_REPORT = "build/scan/report.json"


@dataclass
class ProjectImages:
    """The project's image build (brokkr_dev.containers.images) of the checkout at
    `root` (default: this repository) with a builder: auto, buildx, podman.

    Either builder leaves the manifest list in podman storage; the steps below push,
    tag and sign it from there without knowing which builder made it. With podman the
    images are reproducible: a rebuild of the release commit gives the same digests.
    """

    builder: str = "auto"
    root: Path = paths.REPO_ROOT
    reproducible: bool = True

    def __call__(self, name: str, platforms: Sequence[str]) -> str:
        target = name.removeprefix("brokkr-")
        arches = tuple(p.split("/", 1)[1] for p in platforms)
        result = images.build(
            targets=(target,),
            arches=arches,
            builder=self.builder,
            root=self.root,
            reproducible=self.reproducible,
        )
        return str(result.manifests[target][0])

    def materials(self, name: str, platform: str) -> list[Material]:
        """What one platform image is built from, besides the source commit: the base
        image, the requirements and the wheels it installs."""
        arch = platform.split("/", 1)[1]
        found = [base_image_material(arch)]
        found += provenance.file_materials(
            self.root, ("docker/requirements.txt", "docker/build-requirements.txt")
        )
        found += provenance.wheel_materials(self.root / "docker" / "wheelhouse", arch)
        return found


def images_builder(builder: str = "auto", root: Path = paths.REPO_ROOT) -> ProjectImages:
    """The project's image build; see ProjectImages."""
    return ProjectImages(builder, root)


def base_image_material(arch: str) -> Material:
    """The local debootstrap base image of an architecture, by its digest in podman
    storage (what the build used), with the recipe key that made it."""
    base = baseimages.for_arch(arch)
    annotations = {"recipe": base.key, "suite": base.suite, "mirror": baseimages.MIRROR}
    try:
        pinned = baseimages.pinned(base)
    except ContainerError as exc:
        raise ReleaseError(
            f"provenance: base image {base.tag} is not in podman storage ({exc}); "
            f"run `invoke images.base --platforms linux/{arch}` and re-run the release"
        ) from None
    digest = pinned.rsplit("@", 1)[1]
    return Material(
        name=f"base image linux/{arch}",
        uri=f"{base.tag}@{digest}",
        digest={"sha256": digest.split(":", 1)[1]},
        annotations=annotations,
    )


@dataclass
class Outcome:
    """What a run published (digests), for notes, tests and the summary."""

    images: dict[str, str] = field(default_factory=dict)  # name -> manifest list digest
    platforms: dict[str, dict[str, str]] = field(default_factory=dict)  # name -> platform -> digest
    charts: dict[str, str] = field(default_factory=dict)  # name -> digest
    moved: dict[str, list[str]] = field(default_factory=dict)  # repo -> tags written
    skipped: list[str] = field(default_factory=list)
    notes_path: Path | None = None
    assets: list[Path] = field(default_factory=list)  # dist/<tag>/..., SHA256SUMS last
    github_url: str | None = None
    # When this run pushed an image or chart (by name): its provenance's build times.
    pushed: dict[str, tuple[str, str]] = field(default_factory=dict)
    vex: dict | None = None  # the OpenVEX document of the release


class Pipeline:
    """Runs a computed Plan; construct with the tools it needs."""

    def __init__(
        self,
        plan: Plan,
        registry: Registry,
        *,
        builder: ImageBuilder | None = None,
        podman: Sequence[str] | None = None,
        helm: str = "helm",
        cosign: str = "cosign",
        signer: Signer | None = None,
        github: GitHub | None = None,
        log: Log = print,
        after_step: Callable[[str], None] | None = None,
        provenance_builder: Builder | None = None,
    ) -> None:
        self.plan = plan
        self.options: Options = plan.options
        self.registry = registry
        self.builder = builder or images_builder(plan.options.builder, plan.options.root)
        self.podman = list(podman) if podman is not None else podman_command()
        self.helm = helm
        self.cosign = cosign  # also without signing: the air-gap bundles use `cosign save`
        self.signer = signer
        self.github = github
        self.log = log
        self.after_step = after_step
        self.provenance_builder = provenance_builder or Builder(provenance.LOCAL_BUILDER)
        self.outcome = Outcome()

    def run(self, steps: Sequence[str] = STEPS) -> Outcome:
        for step in steps:
            getattr(self, "step_" + step.replace("-", "_"))()
            if self.after_step:
                self.after_step(step)
        return self.outcome

    # --- helpers -------------------------------------------------------------------

    def _run(self, command: Sequence[str], what: str, input: str | None = None) -> str:
        hint = f"{what}: re-run the same command to resume"
        return run(command, timeout=COMMAND_TIMEOUT, hint=hint, input=input).stdout

    def _repo(self, repository: str) -> str:
        return repository.split("/", 1)[1]

    # --- steps ---------------------------------------------------------------------

    def step_stamp(self) -> None:
        root = self.options.root
        changes = stamp_all(root, self.options.version, self.options.charts, write=True)
        if not changes:
            self.log("stamp: every file already carries " + self.options.version.plain)
            return
        for change in changes:
            self.log("stamp: " + change.describe(root))
        git.git(root, "add", *sorted({str(c.path) for c in changes}))
        git.git(root, "commit", "-q", "-m", f"chore(release): {self.options.version.tag}")

    def step_images(self) -> None:
        for image in self.plan.images:
            repo = self._repo(image.repository)
            digest = self.registry.digest(repo, image.tags[0].tag)
            if digest is None:
                started = provenance.now()
                local = self.builder(image.name, self.options.platforms)
                digest = self._push_list(local, image)
                self.outcome.pushed[image.name] = (started, provenance.now())
                self.log(f"images: pushed {image.reference} {digest}")
            else:
                self.outcome.skipped.append(f"{image.reference} (already published)")
                self.log(f"images: {image.reference} already published as {digest}, skipped")
            self.outcome.images[image.name] = digest
            self.outcome.platforms[image.name] = self._platforms(repo, digest, image)

    def _push_list(self, local: str, image: ImagePlan) -> str:
        with tempfile.TemporaryDirectory() as tmp:
            digest_file = Path(tmp) / "digest"
            tls = ["--tls-verify=false"] if is_loopback(self.options.host) else []
            self._run(
                [
                    *self.podman,
                    "manifest",
                    "push",
                    "--all",
                    *tls,
                    "--digestfile",
                    str(digest_file),
                    local,
                    f"docker://{image.reference}",
                ],
                f"push {image.reference}",
            )
            return digest_file.read_text().strip()

    def _platforms(self, repo: str, digest: str, image: ImagePlan) -> dict[str, str]:
        manifest = self.registry.manifest(repo, digest)
        if manifest is None:
            raise ReleaseError(f"{image.repository}@{digest} vanished from the registry")
        entries = json.loads(manifest.body).get("manifests") or []
        found = {
            f"{e['platform']['os']}/{e['platform']['architecture']}": e["digest"]
            for e in entries
            if "platform" in e
        }
        missing = [p for p in self.options.platforms if p not in found]
        if missing:
            raise ReleaseError(
                f"{image.reference} is published but lacks {', '.join(missing)}; it is never "
                "overwritten: release the next patch version with a complete build"
            )
        return found

    def step_tags(self) -> None:
        version = self.options.version
        for image in self.plan.images:
            repo = self._repo(image.repository)
            digest = self.outcome.images[image.name]
            released = parse_released(self.registry.tags(repo)) | {version}
            written = []
            for change in release_tags(version, released):
                if change.action is Action.KEEP and change.tag == version.tag:
                    continue
                if self.registry.digest(repo, change.tag) == digest:
                    continue  # a resumed run already moved it
                self.registry.copy_tag(repo, digest, change.tag)
                written.append(change.tag)
                self.log(f"tags: {image.repository}:{change.tag} -> {digest}")
            self.outcome.moved[image.repository] = written

    def step_charts(self) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            for chart in self.plan.charts:
                repo = self._repo(chart.repository)
                digest = self.registry.digest(repo, chart.version)
                if digest is None:
                    started = provenance.now()
                    digest = self._push_chart(chart, Path(tmp))
                    self.outcome.pushed["chart " + chart.name] = (started, provenance.now())
                    self.log(f"charts: pushed {chart.reference} {digest}")
                else:
                    self.outcome.skipped.append(f"{chart.reference} (already published)")
                    self.log(f"charts: {chart.reference} already published, never overwritten")
                self.outcome.charts[chart.name] = digest

    def _push_chart(self, chart: ChartPlan, workdir: Path) -> str:
        source = self.options.charts / chart.name
        sign, passphrase = self._helm_signing()
        out = self._run(
            [self.helm, "package", str(source), "--destination", str(workdir), *sign],
            f"helm package {source}",
            input=passphrase,
        )
        package = Path(out.strip().rsplit(":", 1)[-1].strip())
        self.check_chart_images(source)
        plain = ["--plain-http"] if is_loopback(self.options.host) else []
        target = "oci://" + chart.repository.rsplit("/", 1)[0]
        self._run([self.helm, "push", str(package), target, *plain], f"helm push {chart.reference}")
        digest = self.registry.digest(self._repo(chart.repository), chart.version)
        if digest is None:
            raise ReleaseError(f"helm push reported success but {chart.reference} is not there")
        return digest

    def _helm_signing(self) -> tuple[list[str], str | None]:
        """`helm package` flags that also write <chart>.tgz.prov (pushed with the chart
        as its provenance layer), and the key's passphrase for stdin, if any."""
        if not self.options.helm_key or not self.options.helm_keyring:
            return [], None
        flags = ["--sign", "--key", self.options.helm_key, "--keyring", self.options.helm_keyring]
        passphrase = os.environ.get(HELM_KEY_UNLOCK_ENV)
        if passphrase is not None:
            flags += ["--passphrase-file", "-"]
        return flags, passphrase

    def check_chart_images(self, chart_dir: Path) -> None:
        """Refuse to push a chart whose default Brokkr images are not published."""
        published = {(i.name, c.tag) for i in self.plan.images for c in i.tags}
        prefix = self.options.registry.split("/", 1)[1]
        problems = chart_images.unpublished(
            chart_images.render(self.helm, chart_dir),
            published,
            lambda name, tag: self.registry.digest(f"{prefix}/{name}", tag) is not None,
        )
        if problems:
            raise ReleaseError(f"chart {chart_dir.name}: " + "; ".join(problems))

    def _signables(self) -> list[tuple[str, str]]:
        """(repo path, digest) of every image manifest list, platform image and chart.

        A platform image is signed too: the air-gap bundle of an architecture holds
        that platform image without the index (release/airgap.py).
        """
        items = []
        for image in self.plan.images:
            repo = self._repo(image.repository)
            items.append((repo, self.outcome.images[image.name]))
            items += [(repo, d) for _, d in sorted(self.outcome.platforms[image.name].items())]
        items += [(self._repo(c.repository), self.outcome.charts[c.name]) for c in self.plan.charts]
        return items

    def step_sign(self) -> None:
        if not self.options.sign or self.signer is None:
            self.log("sign: skipped")
            return
        host = self.options.host
        for repo, digest in self._signables():
            if attestations.is_signed(self.registry, repo, digest):
                self.log(f"sign: {host}/{repo}@{digest} already signed")
            else:
                self.signer.sign(host, repo, digest)
                self.log(f"sign: signed {host}/{repo}@{digest}")
            self.signer.verify(host, repo, digest)
            self.log(f"sign: verified {host}/{repo}@{digest}")

    def _signing(self, step: str) -> Signer | None:
        """The signer, or None (logged) when this release does not sign."""
        if not self.options.sign or self.signer is None:
            self.log(f"{step}: skipped (no signing)")
            return None
        return self.signer

    def _attach(
        self,
        signer: Signer,
        repo: str,
        digest: str,
        *,
        predicate_type: str,
        body: Callable[[], object],
        what: str,
    ) -> None:
        """Attest body() (of that type) to repo@digest unless attached already; verify."""
        host = self.options.host
        if predicate_type in attestations.predicate_types(self.registry, repo, digest):
            self.log(f"{what}: {host}/{repo}@{digest} already attested")
        else:
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "predicate.json"
                path.write_text(json.dumps(body(), indent=1, sort_keys=True) + "\n")
                signer.attest(host, repo, digest, path, predicate_type)
            self.log(f"{what}: attested {host}/{repo}@{digest}")
        signer.verify_attestation(host, repo, digest, predicate_type)

    def step_provenance(self) -> None:
        signer = self._signing("provenance")
        if signer is None:
            return
        for image in self.plan.images:
            repo = self._repo(image.repository)
            platforms = self.outcome.platforms[image.name]
            for platform, digest in platforms.items():
                self._attach(
                    signer,
                    repo,
                    digest,
                    predicate_type=provenance.PREDICATE_TYPE,
                    body=functools.partial(self.image_provenance, image, platform),
                    what="provenance",
                )
            self._attach(
                signer,
                repo,
                self.outcome.images[image.name],
                predicate_type=provenance.PREDICATE_TYPE,
                body=functools.partial(self.index_provenance, image),
                what="provenance",
            )
        for chart in self.plan.charts:
            self._attach(
                signer,
                self._repo(chart.repository),
                self.outcome.charts[chart.name],
                predicate_type=provenance.PREDICATE_TYPE,
                body=functools.partial(self.chart_provenance, chart),
                what="provenance",
            )

    def _provenance(
        self, kind: str, key: str, external: Mapping[str, object], materials: list[Material]
    ) -> dict[str, object]:
        tag = self.options.version.tag if self.options.git_tag else None
        source = provenance.source_material(self.options.root, self.options.github_repo, tag)
        started, finished = self.outcome.pushed.get(key, ("", ""))
        return provenance.predicate(
            kind=kind,
            github_repo=self.options.github_repo,
            external={"version": self.options.version.tag, **external},
            materials=[source, *materials],
            builder=self.provenance_builder,
            started=started,
            finished=finished,
        )

    def image_provenance(self, image: ImagePlan, platform: str) -> dict[str, object]:
        """One platform image: its build inputs (the builder names them) and parameters."""
        materials: list[Material] = (
            self.builder.materials(image.name, platform)
            if isinstance(self.builder, DescribesInputs)
            else []
        )
        external = {
            "image": image.name,
            "platform": platform,
            "registry": self.options.registry,
            "builder": self.options.builder,
        }
        return self._provenance("image", image.name, external, materials)

    def index_provenance(self, image: ImagePlan) -> dict[str, object]:
        """The index: the platform images it joins, by digest."""
        name, repository = image.name, image.repository
        materials = [
            Material(
                name=f"image {platform}",
                uri=provenance.oci_purl(name, digest, repository, platform.split("/")[1]),
                digest={"sha256": digest.split(":", 1)[1]},
            )
            for platform, digest in sorted(self.outcome.platforms[name].items())
        ]
        external = {
            "image": name,
            "platforms": sorted(self.outcome.platforms[name]),
            "registry": self.options.registry,
        }
        return self._provenance("index", name, external, materials)

    def chart_provenance(self, chart: ChartPlan) -> dict[str, object]:
        """A chart: its source directory at the commit, and the images it deploys."""
        materials = [
            Material(
                name=f"image {image.name}",
                uri=provenance.oci_purl(
                    image.name, self.outcome.images[image.name], image.repository
                ),
                digest={"sha256": self.outcome.images[image.name].split(":", 1)[1]},
            )
            for image in self.plan.images
            if image.name == chart.name and image.name in self.outcome.images
        ]
        external = {
            "chart": chart.name,
            "chartVersion": chart.version,
            "appVersion": chart.app_version,
            "path": f"charts/{chart.name}",
            "repository": f"oci://{chart.repository}",
        }
        return self._provenance("chart", "chart " + chart.name, external, materials)

    def step_sbom(self) -> None:
        if not self.options.sbom:
            self.log("sbom: skipped (--no-sbom)")
            return
        signer = self._signing("sbom")
        if signer is None:
            return
        host = self.options.host
        with tempfile.TemporaryDirectory() as tmp:
            for image in self.plan.images:
                repo = self._repo(image.repository)
                for platform, digest in self.outcome.platforms[image.name].items():
                    present = attestations.predicate_types(self.registry, repo, digest)
                    missing = [t for t in (SPDX, CYCLONEDX) if t not in present]
                    if missing:
                        documents = signer.sbom(host, repo, digest, Path(tmp))
                        for predicate_type in missing:
                            signer.attest(
                                host, repo, digest, documents[predicate_type], predicate_type
                            )
                        self.log(f"sbom: attested {image.repository}@{digest} ({platform})")
                    for predicate_type in (SPDX, CYCLONEDX):
                        signer.verify_attestation(host, repo, digest, predicate_type)

    def released_images(self) -> list[vex.ReleasedImage]:
        return [
            vex.ReleasedImage(i.name, self.outcome.images[i.name], self.outcome.platforms[i.name])
            for i in self.plan.images
        ]

    def vex_document(self) -> dict:
        """The OpenVEX document of this release (scan/vex.py), from the accepted
        findings and, when present, the release-mode scan report of this tree."""
        root = self.options.root
        accepted_file = root / ACCEPTED_FINDINGS
        accepted = load_accepted(accepted_file) if accepted_file.exists() else []
        version = self.options.version
        repo = self.options.github_repo
        created = git.git(root, "show", "-s", "--format=%cI", "HEAD")
        return vex.release_document(
            accepted,
            self.released_images(),
            report=root / SCAN_REPORT,
            document_id=(
                f"https://github.com/{repo}/releases/download/{version.tag}/{vex_name(version)}"
            ),
            author=f"Brokkr maintainers (https://github.com/{repo})",
            timestamp=created,
        )

    def step_vex(self) -> None:
        """Attach the release's VEX to every image (index and platforms) for `trivy
        --vex oci`; an earlier run's attached document wins (resume)."""
        signer = self._signing("vex") if self.options.sign else None
        first = self.plan.images[0] if self.plan.images else None
        document = None
        if signer and first is not None:
            repo = self._repo(first.repository)
            index = self.outcome.images[first.name]
            if OPENVEX in attestations.predicate_types(self.registry, repo, index):
                document = attestations.predicate(self.registry, repo, index, OPENVEX)
        if document is None:
            document = self.vex_document()
        self.outcome.vex = document
        self.log(f"vex: {len(document.get('statements') or [])} statements")
        if signer is None:
            return
        for image in self.plan.images:
            repo = self._repo(image.repository)
            digests = [
                self.outcome.images[image.name],
                *self.outcome.platforms[image.name].values(),
            ]
            for digest in digests:
                self._attach(
                    signer, repo, digest, predicate_type=OPENVEX, body=lambda: document, what="vex"
                )

    def published(self) -> list[notes.Published]:
        items = [
            notes.Published("image", i.reference, self.outcome.images[i.name])
            for i in self.plan.images
        ]
        items += [
            notes.Published("chart", c.reference, self.outcome.charts[c.name])
            for c in self.plan.charts
        ]
        return items

    def step_notes(self) -> None:
        root = self.options.root
        version = self.options.version
        previous = previous_release(root, version)
        text = notes.render(
            version,
            previous,
            git.commits(root, previous.tag if previous else None),
            self.published(),
            cosign_key=(self.options.cosign_key.removesuffix(".key") + ".pub")
            if self.options.cosign_key
            else None,
        )
        path = root / "dist" / f"release-notes-{version.tag}.md"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        self.outcome.notes_path = path
        self.log(f"notes: {path}")

    def step_assets(self) -> None:
        """Write the release assets (read back from the registry) to dist/<tag>/."""
        directory = self.options.root / "dist" / self.options.version.tag
        directory.mkdir(parents=True, exist_ok=True)
        found = release_assets(
            self.registry,
            self.plan,
            self.outcome.charts,
            self.outcome.platforms,
            self.outcome.images,
            cosign=self.cosign,
            vex=self.outcome.vex,
        )
        self.outcome.assets = []
        for asset in found:
            path = directory / asset.name
            path.write_bytes(asset.data)
            self.outcome.assets.append(path)
        self.log(f"assets: {len(found)} files in {directory} ({', '.join(a.name for a in found)})")

    def step_github(self) -> None:
        if not self.options.github_release or self.github is None:
            self.log("github: release skipped")
            return
        if self.outcome.notes_path is None:
            raise ReleaseError("github: the notes step did not run")
        moved_latest = any(
            change.tag == "latest" for image in self.plan.images for change in image.tags
        )
        self.outcome.github_url = self.github.ensure_release(
            self.options.version, self.outcome.notes_path.read_text(), latest=moved_latest
        )
        self.log(f"github: {self.outcome.github_url}")
        if not self.outcome.assets:
            raise ReleaseError("github: the assets step did not run")
        uploaded = self.github.upload_assets(
            self.options.version.tag,
            [Asset(p.name, p.read_bytes(), content_type(p.name)) for p in self.outcome.assets],
        )
        self.log(f"github: attached {', '.join(uploaded) or 'nothing new (all there)'}")

    def step_git_tag(self) -> None:
        if not self.options.git_tag:
            return
        root, tag = self.options.root, self.options.version.tag
        if git.tag_commit(root, tag) is None:
            git.git(root, "tag", "-a", tag, "-m", f"Brokkr {tag}")
            self.log(f"git: tagged {tag}; push it with `git push origin {tag}`")
