"""Running an operator guide's marked blocks: the shell environment and the assertion.

Shared by tests/docs (the `local` environment) and tests/e2e_kind (`kind`).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from brokkr_dev.base import paths
from tests.fixtures import docexec

GUIDES = paths.REPO_ROOT / "docs" / "operators"
# The guides whose blocks run on kind (tests/e2e_kind/test_guides_on_kind.py), and
# why the others' are marked `on=local` (docs/operators/README.md). A guide with a
# block for kind must be listed here (tests/unit/test_docexec.py checks).
ON_KIND_OWN_INSTALL = ("quick-start.md", "raw-manifests.md")  # they install both charts
ON_KIND_OWN_TEST = ("air-gapped.md",)  # with a release and a mirror: test_airgapped_on_kind.py
ON_KIND_SHARED_INSTALL = (  # against the install of the kind session's tests
    "external-broker.md",
    "gitops.md",
    "monitoring.md",
    "multi-arch.md",
    "multi-cluster.md",
    "troubleshooting.md",
)


def guides_for(environment: str, exclude: tuple[str, ...] = ()) -> list[Path]:
    """Guides with at least one block that runs in `environment`."""
    return [
        guide
        for guide in sorted(GUIDES.glob("*.md"))
        if guide.name not in exclude
        and any(
            b.kind == "exec" and environment in b.on
            for b in docexec.guide_blocks(guide, paths.REPO_ROOT)
        )
    ]


def guide_env(workdir: Path, kubeconfig: str) -> dict[str, str]:
    """The shell environment of a guide run: pinned tools and the services first on
    PATH, this cluster only, helm's state in the work directory."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("BROKKR_", "HELM_")) and k != "KUBECONFIG"
    }
    venv_bin = Path(sys.executable).parent
    env["PATH"] = os.pathsep.join([str(paths.BIN_DIR), str(venv_bin), env.get("PATH", "")])
    env["KUBECONFIG"] = kubeconfig
    for kind in ("CACHE", "CONFIG", "DATA"):
        env[f"HELM_{kind}_HOME"] = str(workdir / ".helm" / kind.lower())
    return env


def run_guide(
    guide: Path, environment: str, values: dict[str, str], workdir: Path, env: dict[str, str]
) -> float:
    """Run the guide's blocks for `environment`; the seconds they took."""
    plan = docexec.script(docexec.guide_blocks(guide, paths.REPO_ROOT), environment, values)
    result = docexec.run(plan, workdir, env)
    print(
        f"{guide.name}: {len(plan.blocks)} blocks in {result.seconds:.1f} s\n{result.output[-12000:]}"
    )
    assert result.returncode == 0, (
        f"{guide.name} failed (exit {result.returncode}):\n{result.output[-6000:]}"
    )
    return result.seconds
