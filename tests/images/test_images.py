"""The built images: user, read-only root, architecture, labels, contents, layer reuse."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import time

import pytest

from brokkr_dev.containers import images
from brokkr_dev.containers.podman import podman
from tests.fixtures.images import BuiltImages, inspect, podman_run

pytestmark = [pytest.mark.images, pytest.mark.slow]

TARGET_ARCH = [(t, a) for t in images.TARGETS for a in images.ARCHES]
PORTS = {"broker": "3000/tcp", "agent": "8080/tcp"}

# Prints uid, gid, machine and every path the image's user may write outside the
# temporary directories (which are tmpfs under --read-only).
PROBE = """
import json, os, platform
skip = {"/proc", "/sys", "/dev", "/tmp", "/var/tmp", "/run/lock", "/dev/shm"}
writable = []
for root, dirs, files in os.walk("/"):
    dirs[:] = [d for d in dirs if os.path.join(root, d) not in skip]
    for name in dirs + files:
        path = os.path.join(root, name)
        if not os.path.islink(path) and os.access(path, os.W_OK):
            writable.append(path)
print(json.dumps({"uid": os.getuid(), "gid": os.getgid(), "groups": os.getgroups(),
                  "machine": platform.machine(), "writable": writable}))
"""


def run_probe(image: str, *options: str) -> dict:
    output = podman_run(
        "run", "--rm", "--network", "none", *options, "--entrypoint", "python", image, "-c", PROBE
    )
    return json.loads(output.strip().splitlines()[-1])


@pytest.mark.parametrize(("target", "arch"), TARGET_ARCH)
def test_metadata_user_ports_signal_entrypoint_and_labels(built_images: BuiltImages, target, arch):
    config = inspect(built_images.ref(target, arch))
    assert config["Architecture"] == arch
    assert config["Os"] == "linux"
    assert config["Config"]["User"] == "10001:10001"
    assert config["Config"]["StopSignal"] in {"SIGTERM", "15"}
    assert config["Config"]["Entrypoint"] == [f"/opt/brokkr/bin/brokkr-{target}"]
    assert list(config["Config"]["ExposedPorts"]) == [PORTS[target]]
    # podman reports the docker-format HEALTHCHECK at the top level, Docker under Config.
    health = (config.get("Healthcheck") or config["Config"]["Healthcheck"])["Test"]
    assert health[:4] == ["CMD", "python", "-m", "brokkr.common.healthcheck"]
    assert health[4].endswith(f":{PORTS[target].split('/')[0]}}}/healthz")
    labels = config["Labels"]
    for key, value in built_images.info.labels(target).items():
        assert labels.get(key) == value, key


@pytest.mark.parametrize(("target", "arch"), TARGET_ARCH)
def test_runs_as_10001_on_the_right_arch_and_writes_nothing_outside_tmp(
    built_images: BuiltImages, target, arch
):
    # Without --read-only: the image's own files must not be writable by its user.
    found = run_probe(built_images.ref(target, arch))
    assert (found["uid"], found["gid"], found["groups"]) == (10001, 10001, [10001])
    assert found["machine"] == images.UNAME_MACHINE[arch]
    assert found["writable"] == []


@pytest.mark.parametrize("arch", images.ARCHES)
def test_entrypoint_starts_with_a_read_only_root(built_images: BuiltImages, arch):
    for target in images.TARGETS:
        result = subprocess.run(
            podman(
                "run", "--rm", "--read-only", "--cap-drop", "ALL", "--network", "none",
                built_images.ref(target, arch), "--help",
            ),
            capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert f"brokkr-{target}" in result.stdout + result.stderr


def test_runtime_has_no_build_tools_caches_or_tests(built_images: BuiltImages):
    script = (
        "import importlib.util, os, shutil;"
        "tools = [t for t in ('gcc', 'cc', 'make', 'pip', 'pip3', 'curl', 'wget') if shutil.which(t)];"
        "paths = [p for p in ('/build', '/staging', '/opt/build-tools', '/root/.cache',"
        " '/opt/brokkr/bin/pip') if os.path.lexists(p)];"
        "debs = [f for f in os.listdir('/var/cache/apt/archives') if f.endswith('.deb')];"
        "hatch = importlib.util.find_spec('hatchling') is not None;"
        "tests = [r for r, d, f in os.walk('/opt/brokkr') if os.path.basename(r) == 'tests'"
        " and 'brokkr' in r.split('site-packages/')[-1][:7]];"
        "print(tools, paths, debs, hatch, tests)"
    )
    output = podman_run(
        "run", "--rm", "--network", "none", "--entrypoint", "python",
        built_images.ref("broker", images.native_arch()), "-c", script,
    )  # fmt: skip
    assert output.strip() == "[] [] [] False []"


@pytest.mark.parametrize("target", images.TARGETS)
def test_manifest_list_holds_both_architectures(built_images: BuiltImages, target):
    manifest = json.loads(podman_run("manifest", "inspect", built_images.manifest(target)))
    found = sorted(m["platform"]["architecture"] for m in manifest["manifests"])
    assert found == sorted(images.ARCHES)
    for tag in built_images.info.tags:
        assert f"{images.image_name(target)}:{tag}" in built_images.result.manifests[target]


def test_code_only_change_reuses_the_dependency_layer(built_images: BuiltImages, tmp_path):
    arch = images.native_arch()
    original = inspect(built_images.ref("broker", arch))["RootFS"]["Layers"]
    images.copy_build_context(tmp_path)
    marker = f"# code-only change {time.time_ns()}\n"
    with (tmp_path / "src" / "brokkr" / "__init__.py").open("a") as handle:
        handle.write(marker)
    # Own tags (a made-up revision), so the session's images keep theirs.
    info = dataclasses.replace(built_images.info, revision="0" * 40, branch="layer-reuse-test")
    request = images.BuildRequest(
        target="broker",
        arch=arch,
        base_image=images.base_image_for(arch),
        info=info,
        context=tmp_path,
        dockerfile=tmp_path / "docker" / "Dockerfile",
    )
    started = time.monotonic()
    result = subprocess.run(
        images.podman_build_command(request), capture_output=True, text=True, timeout=900,
        check=False,
    )  # fmt: skip
    seconds = time.monotonic() - started
    assert result.returncode == 0, result.stderr[-3000:]
    try:
        rebuilt = inspect(request.references[0])["RootFS"]["Layers"]
        base = len(inspect(request.base_image)["RootFS"]["Layers"])
        # base layers, user layer, dependency venv layer: identical; application layer: new.
        assert rebuilt[: base + 2] == original[: base + 2]
        assert rebuilt[base + 2] != original[base + 2]
        assert "Using cache" in result.stdout
        code = podman_run(
            "run", "--rm", "--network", "none", "--entrypoint", "python", request.references[0],
            "-c", "import brokkr; print(open(brokkr.__file__).read())",
        )  # fmt: skip
        assert marker.strip() in code
        print(f"rebuild after a code-only change ({arch}): {seconds:.1f} s")
    finally:
        for reference in request.references:
            podman_run("untag", reference, reference, check=False)
