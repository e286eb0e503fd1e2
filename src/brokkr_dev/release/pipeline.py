"""The release steps, run in order; each first checks what is already published.

Every step is idempotent: it reads the registry (by digest) and skips work that is
done, so a run that failed midway (the registry dropped the connection, the machine
stopped) completes with the very same command. A published image tag or chart
version is never overwritten; floating tags move by re-pointing the same manifest.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from brokkr_dev.base import git, paths
from brokkr_dev.base.commands import run
from brokkr_dev.base.log import Log
from brokkr_dev.containers import images
from brokkr_dev.containers.podman import podman as podman_command
from brokkr_dev.release import ReleaseError, chart_images, notes
from brokkr_dev.release.assets import content_type, release_assets
from brokkr_dev.release.github import Asset, GitHub
from brokkr_dev.release.plan import ChartPlan, ImagePlan, Options, Plan
from brokkr_dev.release.registry import Registry, is_loopback
from brokkr_dev.release.signing import Signer, attestation_tag, signature_tag
from brokkr_dev.release.stamp import stamp_all
from brokkr_dev.release.tags import Action, release_tags
from brokkr_dev.release.version import parse_released, previous_release

# name ("brokkr-broker"), platforms -> local manifest list reference holding them
ImageBuilder = Callable[[str, Sequence[str]], str]
STEPS = (
    "stamp", "images", "tags", "charts", "sign", "sbom", "notes", "assets", "github", "git-tag",
)  # fmt: skip
COMMAND_TIMEOUT = 1800


def images_builder(builder: str = "auto", root: Path = paths.REPO_ROOT) -> ImageBuilder:
    """The project's image build (brokkr_dev.containers.images) of the checkout at `root` (default:
    this repository) with a builder: auto, buildx, podman.

    Either builder leaves the manifest list in podman storage; the steps below push,
    tag and sign it from there without knowing which builder made it.
    """

    def build(name: str, platforms: Sequence[str]) -> str:
        target = name.removeprefix("brokkr-")
        arches = tuple(p.split("/", 1)[1] for p in platforms)
        result = images.build(targets=(target,), arches=arches, builder=builder, root=root)
        return str(result.manifests[target][0])

    return build


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
        signer: Signer | None = None,
        github: GitHub | None = None,
        log: Log = print,
        after_step: Callable[[str], None] | None = None,
    ) -> None:
        self.plan = plan
        self.options: Options = plan.options
        self.registry = registry
        self.builder = builder or images_builder(plan.options.builder, plan.options.root)
        self.podman = list(podman) if podman is not None else podman_command()
        self.helm = helm
        self.signer = signer
        self.github = github
        self.log = log
        self.after_step = after_step
        self.outcome = Outcome()

    def run(self, steps: Sequence[str] = STEPS) -> Outcome:
        for step in steps:
            getattr(self, "step_" + step.replace("-", "_"))()
            if self.after_step:
                self.after_step(step)
        return self.outcome

    # --- helpers -------------------------------------------------------------------

    def _run(self, command: Sequence[str], what: str) -> str:
        hint = f"{what}: re-run the same command to resume"
        return run(command, timeout=COMMAND_TIMEOUT, hint=hint).stdout

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
                local = self.builder(image.name, self.options.platforms)
                digest = self._push_list(local, image)
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
                    digest = self._push_chart(chart, Path(tmp))
                    self.log(f"charts: pushed {chart.reference} {digest}")
                else:
                    self.outcome.skipped.append(f"{chart.reference} (already published)")
                    self.log(f"charts: {chart.reference} already published, never overwritten")
                self.outcome.charts[chart.name] = digest

    def _push_chart(self, chart: ChartPlan, workdir: Path) -> str:
        source = self.options.charts / chart.name
        out = self._run(
            [self.helm, "package", str(source), "--destination", str(workdir)],
            f"helm package {source}",
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
        """(repo path, digest) of every image manifest list and chart."""
        items = [(self._repo(i.repository), self.outcome.images[i.name]) for i in self.plan.images]
        items += [(self._repo(c.repository), self.outcome.charts[c.name]) for c in self.plan.charts]
        return items

    def step_sign(self) -> None:
        if not self.options.sign or self.signer is None:
            self.log("sign: skipped")
            return
        host = self.options.host
        for repo, digest in self._signables():
            if signature_tag(digest) in self.registry.tags(repo):
                self.log(f"sign: {host}/{repo}@{digest} already signed")
            else:
                self.signer.sign(host, repo, digest)
                self.log(f"sign: signed {host}/{repo}@{digest}")
            self.signer.verify(host, repo, digest)
            self.log(f"sign: verified {host}/{repo}@{digest}")

    def step_sbom(self) -> None:
        if not self.options.sbom or self.signer is None or not self.options.sign:
            self.log("sbom: skipped")
            return
        host = self.options.host
        with tempfile.TemporaryDirectory() as tmp:
            for image in self.plan.images:
                repo = self._repo(image.repository)
                for platform, digest in self.outcome.platforms[image.name].items():
                    if attestation_tag(digest) not in self.registry.tags(repo):
                        sbom = self.signer.sbom(host, repo, digest, Path(tmp))
                        self.signer.attest(host, repo, digest, sbom)
                        self.log(f"sbom: attested {image.repository}@{digest} ({platform})")
                    self.signer.verify_attestation(host, repo, digest)

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
