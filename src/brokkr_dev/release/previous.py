"""The release before this one (N-1), published by the release pipeline for upgrade tests.

Which build is "the previous release":

- the highest stable `vX.Y.Z` git tag below the working tree's version, once one
  exists: its own tree is checked out and released;
- until then (the repository has no release tag yet) the working tree itself,
  stamped with the version just before the working tree's (`stamped_version`), so the
  upgrade path is exercised now and switches to real tags without a code change.

`publish` runs the real release pipeline (stamp, images, tags, charts, notes, assets;
no signing, no GitHub) on a scratch checkout into a registry such as a local one, for
one platform. The scratch commit has fixed author, committer and dates, so the same
tree gives the same commit, the same image tags and the image layer cache is reused.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from brokkr_dev import paths
from brokkr_dev.release import ReleaseError, git
from brokkr_dev.release.pipeline import Outcome
from brokkr_dev.release.plan import Options
from brokkr_dev.release.run import release
from brokkr_dev.release.stamp import read_project_version, stamp_all
from brokkr_dev.release.version import Version, parse

Log = Callable[[str], None]
SCRATCH_IDENTITY = {
    "GIT_AUTHOR_NAME": "Brokkr previous-release build",
    "GIT_AUTHOR_EMAIL": "previous-release@brokkr.invalid",
    "GIT_COMMITTER_NAME": "Brokkr previous-release build",
    "GIT_COMMITTER_EMAIL": "previous-release@brokkr.invalid",
}


@dataclass(frozen=True)
class PreviousRelease:
    """The N-1 version and where its build comes from."""

    version: Version
    tag: str | None  # the git tag to build; None: the working tree stamped as `version`

    def describe(self) -> str:
        if self.tag:
            return f"{self.version.tag} (git tag {self.tag})"
        return (
            f"{self.version.tag} (the working tree stamped as {self.version.plain}; no earlier tag)"
        )


def stamped_version(current: Version) -> Version:
    """The version a working-tree build stands in for: one minor below (0.4.2 -> 0.3.0),
    else one patch below (0.0.3 -> 0.0.2), else one major below (2.0.0 -> 1.0.0)."""
    if current.minor:
        return Version(current.major, current.minor - 1, 0)
    if current.patch:
        return Version(current.major, current.minor, current.patch - 1)
    if current.major:
        return Version(current.major - 1, 0, 0)
    raise ReleaseError(
        f"there is no version below {current.plain}: stamp the working tree with a real "
        "version in pyproject.toml and the charts first"
    )


def choose(current: Version, released: set[Version]) -> PreviousRelease:
    """The highest stable released version below `current`, else a stamped stand-in."""
    earlier = [v for v in released if v < current and not v.is_prerelease]
    if earlier:
        best = max(earlier)
        return PreviousRelease(best, best.tag)
    return PreviousRelease(stamped_version(current), None)


def current_version(root: Path = paths.REPO_ROOT) -> Version:
    return parse("v" + read_project_version(root / "pyproject.toml"))


def find(root: Path = paths.REPO_ROOT) -> PreviousRelease:
    """The previous release of the checkout at `root` (its tags and its version)."""
    return choose(current_version(root), git.released_tags(root))


def working_files(root: Path) -> list[str]:
    """Tracked and untracked (not ignored) files of the work tree that exist on disk."""
    listed = git.git(
        root, "ls-files", "-z", "--cached", "--others", "--exclude-standard", strip=False
    )
    return sorted({name for name in listed.split("\0") if name and (root / name).is_file()})


def scratch_checkout(root: Path, previous: PreviousRelease, dest: Path) -> Path:
    """A one-commit git repository at `dest` holding the tag's tree or the work tree."""
    dest.mkdir(parents=True)
    if previous.tag:
        archive = subprocess.run(
            ["git", "-C", str(root), "archive", "--format=tar", previous.tag],
            capture_output=True,
            check=False,
        )
        if archive.returncode != 0:
            raise ReleaseError(f"`git archive {previous.tag}` failed: {archive.stderr.decode()}")
        subprocess.run(["tar", "-x", "-C", str(dest)], input=archive.stdout, check=True)
    else:
        for name in working_files(root):
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(root / name, target, follow_symlinks=False)
    git.git(dest, "init", "-q")
    _commit(dest, f"previous release {previous.version.tag}")
    return dest


def _commit(root: Path, message: str) -> None:
    """Commit everything with a fixed identity and date: same tree, same commit id."""
    env = {**os.environ, **SCRATCH_IDENTITY}
    env["GIT_AUTHOR_DATE"] = env["GIT_COMMITTER_DATE"] = "2000-01-01T00:00:00Z"
    for args in (["add", "-A"], ["commit", "-q", "--no-gpg-sign", "-m", message]):
        done = subprocess.run(
            ["git", "-C", str(root), *args], env=env, capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            raise ReleaseError(f"`git {' '.join(args)}` in {root} failed: {done.stderr.strip()}")
    git.git(root, "checkout", "-q", "--detach")  # no branch: no branch-named image tag


def publish(
    registry: str,
    platform: str,
    *,
    root: Path = paths.REPO_ROOT,
    env: Mapping[str, str] | None = None,
    log: Log = print,
) -> tuple[PreviousRelease, Outcome]:
    """Release N-1 into `registry` (HOST/PATH) for one platform; what and the digests.

    Unsigned and without a GitHub release or git tag: a stand-in for the published
    release that upgrade tests install from `oci://HOST/PATH/charts/...`.
    """
    previous = find(root)
    log(f"previous release: {previous.describe()}")
    with tempfile.TemporaryDirectory(prefix="brokkr-previous-") as tmp:
        scratch = scratch_checkout(root, previous, Path(tmp) / "checkout")
        if stamp_all(scratch, previous.version, scratch / "charts", write=True):
            _commit(scratch, f"chore(release): {previous.version.tag}")
        options = Options(
            version=previous.version,
            registry=registry,
            root=scratch,
            platforms=(platform,),
            sign=False,
            sbom=False,
            github_release=False,
            git_tag=False,
            engine="podman",
            gate=(),  # the tests of the tree under test run in their own sessions
        )
        outcome = release(options, env=env, log=log)
    if outcome is None:
        raise ReleaseError(f"the release of {previous.version.tag} published nothing")
    return previous, outcome
