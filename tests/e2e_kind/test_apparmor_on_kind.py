"""AppArmor on real pods (issue 26.4): what `appArmorProfile: {type: RuntimeDefault}`
does on the kind node, whose kernel is this machine's.

A pod of the restricted profile, from our broker image, names the runtime's default
profile. Where the kernel has AppArmor, the pod runs confined: the process reads its
own profile, the runtime's, in enforce mode. Where it has none (this CI machine), the
kubelet refuses the pod, which is why the charts' default is `{}` and only the
production values set RuntimeDefault (docs/operators/production.md, "AppArmor"). The
chart renders the field (tests/charts/test_hardening.py); this proves what a node
does with it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from brokkr_dev.base.localnet import wait_for as poll
from tests.e2e_kind.conftest import (
    Cluster,
    KindImages,
    remove_namespace,
    restricted_namespace,
    restricted_spec,
)

pytestmark = pytest.mark.kind

NAMESPACE = "brokkr-apparmor"
# The kind node shares the kernel of the machine running the tests.
ENABLED = Path("/sys/module/apparmor/parameters/enabled")
READ_PROFILE = [
    "python",
    "-c",
    "from pathlib import Path\n"
    "new = Path('/proc/self/attr/apparmor/current')\n"
    "print((new if new.exists() else Path('/proc/self/attr/current')).read_text().strip())\n",
]


def host_has_apparmor() -> bool:
    return ENABLED.exists() and ENABLED.read_text().strip() == "Y"


def finished(cluster: Cluster, name: str) -> dict[str, Any]:
    path = f"/api/v1/namespaces/{NAMESPACE}/pods/{name}"
    return poll(
        lambda: (
            (pod := cluster.api.get(path))["status"].get("phase") in ("Succeeded", "Failed") and pod
        ),
        120,
        f"pod {name} to finish or be refused",
    )


def test_a_runtime_default_apparmor_profile_confines_the_pod_or_is_refused_without_apparmor(
    cluster: Cluster, kind_images: KindImages
):
    restricted_namespace(cluster, NAMESPACE)
    try:
        spec = restricted_spec(kind_images.broker, READ_PROFILE)
        spec["securityContext"]["appArmorProfile"] = {"type": "RuntimeDefault"}
        # Admitted by the restricted Pod Security Standard (RuntimeDefault is allowed).
        cluster.api.create(
            f"/api/v1/namespaces/{NAMESPACE}/pods",
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "confined"},
                "spec": {"restartPolicy": "Never", **spec},
            },
        )
        pod = finished(cluster, "confined")
        status = pod["status"]
        if host_has_apparmor():
            assert status["phase"] == "Succeeded", status
            logs = cluster.api.request(
                "GET", f"/api/v1/namespaces/{NAMESPACE}/pods/confined/log"
            ).text
            assert "(enforce)" in logs and "unconfined" not in logs, logs
        else:
            assert status["phase"] == "Failed", status
            said = f"{status.get('reason', '')}: {status.get('message', '')}"
            assert "AppArmor" in said and "not enabled" in said, said
    finally:
        remove_namespace(cluster, NAMESPACE)
