"""kwok's stage configuration: how fake nodes become Ready and fake Pods run.

The kwok binary needs its stages in a config file. We use the defaults that kwok
itself ships (and that `kwokctl` applies), read from kwok's module source at the
pinned version, and keep the assembled file in the machine cache.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from pathlib import Path

from brokkr_dev.base import paths
from brokkr_dev.base.errors import AutomationError

# kwok's default "fast" stages: nodes Ready at once with a lease heartbeat; Pods
# Running and Ready as soon as they are scheduled, Jobs' Pods complete, deletion
# finishes without a kubelet.
STAGE_FILES = (
    "kustomize/stage/node/fast/node-initialize.yaml",
    "kustomize/stage/node/heartbeat-with-lease/node-heartbeat-with-lease.yaml",
    "kustomize/stage/pod/fast/pod-ready.yaml",
    "kustomize/stage/pod/fast/pod-complete.yaml",
    "kustomize/stage/pod/fast/pod-delete.yaml",
)


class StagesError(AutomationError):
    """kwok's stage files could not be found."""


def stages_file(version: str) -> Path:
    """The assembled stage config for kwok `version`, made on first use."""
    target = paths.cache_dir() / "kwok-stages" / version / "stages.yaml"
    if not target.exists():
        source = module_dir(version)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(assemble(source))
    return target


def assemble(source: Path) -> str:
    """Join kwok's stage files from its module source into one YAML stream."""
    documents = []
    for relative in STAGE_FILES:
        path = source / relative
        if not path.exists():
            raise StagesError(f"kwok stage file {path} is missing; is {source} a kwok module?")
        documents.append(path.read_text().strip())
    return "\n---\n".join(documents) + "\n"


def module_dir(version: str) -> Path:
    """kwok's module source directory in the Go module cache (downloaded if needed)."""
    go = shutil.which("go")
    if go is None:
        raise StagesError("kwok's stage files come from its Go module: install Go 1.26+")
    result = subprocess.run(
        [go, "mod", "download", "-json", f"sigs.k8s.io/kwok@{version}"],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
        cwd=tempfile.gettempdir(),  # outside any module: change no go.mod
    )
    try:
        return Path(json.loads(result.stdout)["Dir"])
    except (ValueError, KeyError) as exc:
        raise StagesError(
            f"`go mod download sigs.k8s.io/kwok@{version}` failed: "
            f"{(result.stderr or result.stdout).strip()[-500:]}"
        ) from exc
