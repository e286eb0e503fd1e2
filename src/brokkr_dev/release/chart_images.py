"""Check that a chart's default image references are tags that are published.

A chart whose default image tag is one no release publishes would install and then
fail to pull: this catches it before anything is pushed.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

from brokkr_dev.release import ReleaseError
from brokkr_dev.release.plan import IMAGE_NAMES
from brokkr_dev.release.stamp import stamp_chart
from brokkr_dev.release.version import Version

_IMAGE = re.compile(r"^\s*-?\s*image:\s*[\"']?([^\"'\s]+)", re.MULTILINE)


def render(helm: str, chart_dir: Path) -> str:
    """`helm template` with the defaults or, when a chart requires values (the agent
    needs a broker URL), with the first example values file under `values/` that works."""
    attempts: list[list[str]] = [[]]
    attempts += [["--values", str(f)] for f in sorted((chart_dir / "values").glob("*.yaml"))]
    first_error = ""
    for extra in attempts:
        result = subprocess.run(
            [helm, "template", "release-check", str(chart_dir), *extra],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if result.returncode == 0:
            return result.stdout
        first_error = first_error or result.stderr.strip()[-300:]
    raise ReleaseError(
        f"helm template {chart_dir} fails with its default values and with every file "
        f"in {chart_dir / 'values'}: {first_error}"
    )


def unpublished(
    rendered: str, published: set[tuple[str, str]], exists: Callable[[str, str], bool]
) -> list[str]:
    """Problems for each Brokkr image reference whose tag is neither in `published`
    ((name, tag) pairs of this release) nor already in the registry (`exists`)."""
    problems = []
    tags = ", ".join(sorted({tag for _, tag in published})) or "no tags"
    for reference in _IMAGE.findall(rendered):
        name_part, _, tag = reference.partition("@")[0].rpartition(":")
        name = name_part.rsplit("/", 1)[-1]
        if name not in IMAGE_NAMES:
            continue  # a third-party image (e.g. PostgreSQL for development)
        if (name, tag) not in published and not exists(name, tag):
            problems.append(
                f"it deploys {reference} by default, but tag {tag!r} is not published "
                f"(this release publishes {tags}); make the chart's default image tag "
                ".Chart.AppVersion"
            )
    return problems


def check_stamped(
    helm: str,
    chart_dir: Path,
    version: Version,
    published: set[tuple[str, str]],
    exists: Callable[[str, str], bool],
) -> list[str]:
    """The check on a copy of the chart stamped with the release version (dry runs and
    preflight run it before any file changes)."""
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / chart_dir.name
        shutil.copytree(chart_dir, copy)
        stamp_chart(copy, version, write=True)
        return [
            f"chart {chart_dir.name}: {p}"
            for p in unpublished(render(helm, copy), published, exists)
        ]
