"""`uses:` steps, each played by its closest local equivalent.

checkout: the clone the player runs in is the checkout. setup-python: the system
python3. setup-go: the Go on PATH, checked against the requested major.minor. cache:
a tar per path under `<cache dir>/<key>/`, restored and saved with GitHub's rules
(exact key, then the newest entry matching a restore key; saved after the job
succeeds, unless the exact key was hit). upload-artifact and download-artifact: a
folder per artifact that lives as long as the workflow run (artifacts.py). Any
other action is refused by name.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shutil
import time
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from brokkr_dev.base.commands import CommandError, run
from brokkr_dev.base.log import Log
from brokkr_dev.base.workflow.artifacts import (
    ArtifactError,
    ArtifactStore,
    expand_home,
    select,
)
from brokkr_dev.base.workflow.plan import WorkflowError

MANIFEST = "paths.json"  # written once: its time is the entry's creation
USED = "used"  # touched on each restore
UNUSED_DAYS = 30  # GitHub: 7; a CI machine may run less often than weekly


@dataclass
class Played:
    """What a `uses:` step left behind: outputs, and a post step for the job's end."""

    outputs: dict[str, str] = field(default_factory=dict)
    post: Callable[[], None] | None = None


@dataclass(frozen=True)
class Runner:
    """Where a step plays: the clone, the persistent cache folder, the step's env."""

    workspace: Path
    cache_dir: Path
    env: Mapping[str, str]
    log: Log = print
    # Cache entries already restored to these paths by an earlier job of this play:
    # the jobs share one home here, so a second restore would only reread the tars.
    restored: set[tuple[str, tuple[str, ...]]] = field(default_factory=set)
    # The artifacts of the workflow run being played (None: not in a run).
    artifacts: Path | None = None


ActionPlayer = Callable[[dict[str, str], Runner], Played]


def play(uses: str, inputs: dict[str, str], runner: Runner) -> Played:
    action, _, _version = uses.partition("@")
    player = PLAYERS.get(action)
    if player is None:
        raise WorkflowError(
            f"`uses: {uses}` has no local equivalent in the workflow player; it plays "
            f"{', '.join(sorted(PLAYERS))} (src/brokkr_dev/base/workflow/actions.py)"
        )
    allowed = ACCEPTED_INPUTS[action]
    unknown = sorted(set(inputs) - allowed)
    if unknown:
        raise WorkflowError(
            f"`uses: {action}` is played without the inputs {', '.join(unknown)}; "
            f"it takes {', '.join(sorted(allowed))}"
        )
    return player(inputs, runner)


def checkout(_inputs: dict[str, str], runner: Runner) -> Played:
    runner.log(f"the clone in {runner.workspace} is the checkout")
    return Played()


def setup_python(inputs: dict[str, str], runner: Runner) -> Played:
    version = _first_line(run(["python3", "--version"], env=runner.env).stdout)
    runner.log(f"system {version} (asked for {inputs.get('python-version', 'any')})")
    # Like setup-python's output: the exact version (cache keys hold it, since venvs
    # link to their interpreter).
    return Played(outputs={"python-version": version.removeprefix("Python ").strip()})


def setup_go(inputs: dict[str, str], runner: Runner) -> Played:
    wanted = inputs.get("go-version", "")
    if not wanted and inputs.get("go-version-file"):
        wanted = go_directive(runner.workspace / inputs["go-version-file"])
    found = run(
        ["go", "version"], env=runner.env, hint="install Go and put it on PATH (go.dev/dl)"
    ).stdout
    match = re.search(r"go(\d+\.\d+)", found)
    have = match.group(1) if match else "?"
    if wanted and have != major_minor(wanted):
        raise WorkflowError(
            f"setup-go asks for Go {wanted}, but `go version` says {found.strip()!r}; "
            f"put Go {major_minor(wanted)} first on PATH"
        )
    runner.log(f"{found.strip()} (asked for {wanted or 'any'})")
    return Played()


def go_directive(go_mod: Path) -> str:
    match = re.search(r"^go\s+(\S+)", go_mod.read_text(encoding="utf-8"), re.MULTILINE)
    if match is None:
        raise WorkflowError(f"{go_mod} has no `go` directive")
    return match.group(1)


def major_minor(version: str) -> str:
    return ".".join(version.strip().lstrip("v").split(".")[:2])


def cache(inputs: dict[str, str], runner: Runner) -> Played:
    key = inputs.get("key", "")
    if not key or not inputs.get("path", "").strip():
        raise WorkflowError("actions/cache needs `path:` and `key:`")
    spec = CacheSpec.parse(inputs["path"], runner)
    prefixes = [line.strip() for line in inputs.get("restore-keys", "").splitlines()]
    prefixes = [prefix for prefix in prefixes if prefix]
    store = CacheStore(runner.cache_dir)
    hit = store.find(key, prefixes, spec)
    exact = hit is not None and hit.name == store.entry_name(key)
    if hit is None:
        runner.log(f"cache not found for key {key}")
    elif (hit.name, spec.written) in runner.restored:
        runner.log(f"cache {store.key_of(hit)} already restored here by an earlier job")
    else:
        try:
            store.restore(hit, spec)
        except CommandError as exc:  # as on GitHub: a warning, and the job goes on
            runner.log(f"::warning::failed to restore cache {store.key_of(hit)}: {exc}")
            hit, exact = None, False
        else:
            runner.restored.add((hit.name, spec.written))
            runner.log(f"cache restored from key {store.key_of(hit)}")

    def save() -> None:
        if exact:
            runner.log(f"cache hit on the primary key {key}, not saving")
            return
        if not any(path.exists() for path in spec.paths):
            runner.log(f"::warning::none of the cache paths exist; nothing saved for {key}")
            return
        try:
            store.save(key, spec)
        except CommandError as exc:  # as on GitHub: a warning, the job stays green
            runner.log(f"::warning::failed to save cache {key}: {exc}")
            return
        # Only the most specific restore key supersedes: a broader one also matches
        # other jobs' entries, which GitHub keeps.
        store.prune(keep=key, prefixes=prefixes[:1])
        runner.restored.add((store.entry_name(key), spec.written))  # it is what is there
        runner.log(f"cache saved with key {key}")

    return Played(outputs={"cache-hit": "true" if exact else "false"}, post=save)


@dataclass(frozen=True)
class CacheSpec:
    """The `path:` lines: paths to keep (as written, and resolved) and `!` exclusions."""

    written: tuple[str, ...]
    paths: tuple[Path, ...]
    excluded: tuple[Path, ...]

    @classmethod
    def parse(cls, text: str, runner: Runner) -> CacheSpec:
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        home = Path(runner.env.get("HOME") or Path.home())
        kept, written, excluded = [], [], []
        for line in lines:
            exclude = line.startswith("!")
            raw = line.removeprefix("!")
            if any(char in raw for char in "*?["):
                raise WorkflowError(f"cache path {line!r}: the player takes plain paths, no globs")
            path = home / raw[2:] if raw == "~" or raw.startswith("~/") else Path(raw)
            resolved = path if path.is_absolute() else runner.workspace / path
            if exclude:
                excluded.append(resolved)
            else:
                kept.append(resolved)
                written.append(raw)
        return cls(tuple(written), tuple(kept), tuple(excluded))


class CacheStore:
    """Entries `<root>/<quoted key>/`: `paths.json` (the paths as written) and one tar
    per path. An entry is complete once renamed into place."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def entry_name(self, key: str) -> str:
        return urllib.parse.quote(key, safe="")

    def key_of(self, entry: Path) -> str:
        return urllib.parse.unquote(entry.name)

    def entries(self) -> list[Path]:
        if not self.root.is_dir():
            return []
        return [path for path in self.root.iterdir() if (path / MANIFEST).is_file()]

    def find(self, key: str, prefixes: list[str], spec: CacheSpec) -> Path | None:
        """GitHub's lookup: the exact key, else per restore key the newest match.
        Entries saved for other paths do not count (GitHub versions them apart)."""
        usable = [entry for entry in self.entries() if self._paths(entry) == list(spec.written)]
        for entry in usable:
            if entry.name == self.entry_name(key):
                return entry
        for prefix in prefixes:
            matching = [entry for entry in usable if self.key_of(entry).startswith(prefix)]
            if matching:
                return max(matching, key=lambda entry: (entry / MANIFEST).stat().st_mtime)
        return None

    def restore(self, entry: Path, spec: CacheSpec) -> None:
        (entry / USED).touch()
        for index, path in enumerate(spec.paths):
            archive = entry / f"{index}.tar"
            if not archive.exists():
                continue  # the path did not exist when the entry was saved
            path.parent.mkdir(parents=True, exist_ok=True)
            # Files already there are kept: they are as new as the cache's or newer.
            run(["tar", "--extract", "--skip-old-files", f"--file={archive}", "-C", path.parent])

    def save(self, key: str, spec: CacheSpec) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        final = self.root / self.entry_name(key)
        partial = self.root / f".{final.name}.partial-{os.getpid()}"
        remove_tree(partial)
        partial.mkdir()
        try:
            self._archive(spec, partial)
        except CommandError:
            remove_tree(partial)
            raise
        remove_tree(final)
        partial.rename(final)

    def _archive(self, spec: CacheSpec, partial: Path) -> None:
        for index, path in enumerate(spec.paths):
            if not path.exists():
                continue
            excludes = [
                f"--exclude={path.name}/{excluded.relative_to(path)}"
                for excluded in spec.excluded
                if excluded.is_relative_to(path) and excluded != path
            ]
            archive = partial / f"{index}.tar"
            run(["tar", "--create", "--anchored", *excludes, f"--file={archive}",
                 "-C", path.parent, path.name])  # fmt: skip
        (partial / MANIFEST).write_text(json.dumps(list(spec.written)), encoding="utf-8")

    def prune(self, keep: str, prefixes: list[str]) -> None:
        """Drop the older generations the restore keys would have found (one is
        enough), and, like GitHub's eviction, entries unused for UNUSED_DAYS."""
        stale_before = time.time() - UNUSED_DAYS * 86400
        for entry in self.entries():
            name = self.key_of(entry)
            used = entry / USED if (entry / USED).exists() else entry / MANIFEST
            superseded = any(name.startswith(prefix) for prefix in prefixes)
            if name != keep and (superseded or used.stat().st_mtime < stale_before):
                remove_tree(entry)

    def _paths(self, entry: Path) -> list[str]:
        try:
            return list(json.loads((entry / MANIFEST).read_text(encoding="utf-8")))
        except (OSError, ValueError):
            return []


def upload_artifact(inputs: dict[str, str], runner: Runner) -> Played:
    lines = [line.strip() for line in inputs.get("path", "").splitlines() if line.strip()]
    if not lines:
        raise ArtifactError("actions/upload-artifact needs `path:` (the files to upload)")
    if_none = inputs.get("if-no-files-found") or "warn"
    if if_none not in ("warn", "error", "ignore"):
        raise ArtifactError(f"if-no-files-found: {if_none!r}; choose warn, error or ignore")
    name = inputs.get("name") or "artifact"
    home = Path(runner.env.get("HOME") or Path.home())
    hidden = boolean_input(inputs, "include-hidden-files")
    selection = select(lines, runner.workspace, home, hidden=hidden)
    if not selection.files:
        message = (
            f"No files were found with the provided path: {' '.join(lines)}. "
            "No artifacts will be uploaded."
        )
        if if_none == "error":
            raise ArtifactError(message)
        runner.log(f"::warning::{message}" if if_none == "warn" else message)
        return Played()
    number = run_artifacts(runner).upload(
        name, selection, overwrite=boolean_input(inputs, "overwrite")
    )
    count = len(selection.files)
    runner.log(f"artifact {name}: {count} file{'s' * (count != 1)} from {selection.root}")
    return Played(outputs={"artifact-id": str(number)})


def download_artifact(inputs: dict[str, str], runner: Runner) -> Played:
    store = run_artifacts(runner)
    written = inputs.get("path") or str(runner.workspace)
    home = Path(runner.env.get("HOME") or Path.home())
    destination = runner.workspace / expand_home(written, home)  # an absolute path stays
    name = inputs.get("name")
    if name:  # one artifact, straight into the path; a missing one fails the step
        store.download(name, destination)
        names = [name]
    else:  # every artifact (or those matching the pattern): none is not an error
        pattern = inputs.get("pattern") or "*"
        names = [found for found in store.names() if fnmatch.fnmatchcase(found, pattern)]
        merge = boolean_input(inputs, "merge-multiple")
        for found in names:
            store.download(found, destination if merge else destination / found)
    runner.log(f"Total of {len(names)} artifact(s) downloaded to {destination}")
    return Played(outputs={"download-path": str(destination)})


def run_artifacts(runner: Runner) -> ArtifactStore:
    if runner.artifacts is None:
        raise WorkflowError("artifacts exist only within a workflow run: play the workflow")
    return ArtifactStore(runner.artifacts)


def boolean_input(inputs: dict[str, str], name: str) -> bool:
    """A boolean input as actions read it: true or false (any case); absent is false."""
    value = inputs.get(name, "").strip()
    if value.lower() not in ("", "true", "false"):
        raise ArtifactError(f"input {name}: {value!r} is not a boolean; write true or false")
    return value.lower() == "true"


def remove_tree(path: Path) -> None:
    if path.exists():
        shutil.rmtree(path)


def _first_line(text: str) -> str:
    return (text.strip().splitlines() or [""])[0]


PLAYERS: dict[str, ActionPlayer] = {
    "actions/checkout": checkout,
    "actions/setup-python": setup_python,
    "actions/setup-go": setup_go,
    "actions/cache": cache,
    "actions/upload-artifact": upload_artifact,
    "actions/download-artifact": download_artifact,
}
ACCEPTED_INPUTS: dict[str, frozenset[str]] = {
    "actions/checkout": frozenset({"persist-credentials", "fetch-depth"}),
    "actions/setup-python": frozenset({"python-version"}),
    "actions/setup-go": frozenset({"go-version", "go-version-file", "cache"}),
    "actions/cache": frozenset({"path", "key", "restore-keys"}),
    # retention-days and compression-level change nothing within one run here.
    "actions/upload-artifact": frozenset(
        {"name", "path", "if-no-files-found", "retention-days", "compression-level"}
        | {"overwrite", "include-hidden-files"}
    ),
    # No github-token, repository or run-id: another run's artifacts are out of reach.
    "actions/download-artifact": frozenset({"name", "path", "pattern", "merge-multiple"}),
}
