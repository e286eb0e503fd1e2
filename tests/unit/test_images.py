"""Pure logic of the image automation: tags, platforms, build arguments, labels, commands."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from brokkr_dev.containers import baseimages, buildx, images
from brokkr_dev.containers import podman as containers

INFO = images.BuildInfo(
    version="1.2.3",
    revision="0123456789abcdef0123456789abcdef01234567",
    created="2026-11-26T05:00:00Z",
    branch="feature/Add Images",
    source="https://github.com/colliery-io/brokkr",
    licenses="Apache-2.0",
)


def test_sha_tag_uses_seven_hex_digits_and_refuses_non_commits():
    assert images.sha_tag("0123456789abcdef") == "sha-0123456"
    with pytest.raises(containers.ContainerError, match="not a git commit id"):
        images.sha_tag("main")


def test_tags_are_sha_then_branch_and_per_arch_tags_add_the_arch():
    assert INFO.tags == ["sha-0123456", "feature-add-images"]
    assert INFO.arch_tags("arm64") == ["sha-0123456-arm64", "feature-add-images-arm64"]


def test_detached_head_has_only_the_sha_tag():
    detached = images.BuildInfo(**{**INFO.__dict__, "branch": "HEAD"})
    assert detached.tags == ["sha-0123456"]


@pytest.mark.parametrize(
    ("value", "arch"),
    [("linux/amd64", "amd64"), ("arm64", "arm64"), ("aarch64", "arm64"), ("x86_64", "amd64")],
)
def test_platform_names_map_to_go_architectures(value, arch):
    assert images.arch_of(value) == arch
    assert images.platform_of(arch) == f"linux/{arch}"


def test_unknown_platform_is_refused_with_the_choices():
    with pytest.raises(containers.ContainerError, match="linux/amd64, linux/arm64"):
        images.arch_of("linux/s390x")


def test_labels_carry_every_oci_key_from_the_build_info():
    labels = INFO.labels("agent")
    prefix = "org.opencontainers.image."
    assert labels[prefix + "title"] == "brokkr-agent"
    assert labels[prefix + "revision"] == INFO.revision
    assert labels[prefix + "version"] == "1.2.3"
    assert labels[prefix + "created"] == INFO.created
    assert labels[prefix + "licenses"] == "Apache-2.0"
    assert labels[prefix + "source"] == INFO.source
    assert labels[prefix + "description"]


def test_dockerfile_declares_an_arg_for_every_build_arg_and_uses_it_in_a_label():
    dockerfile = images.DOCKERFILE.read_text()
    for name in INFO.build_args():
        assert f"ARG {name}=" in dockerfile
        assert "${" + name + "}" in dockerfile
    assert "ARG BASE_IMAGE=" in dockerfile


def _request(arch="arm64", ca_bundle=None):
    return images.BuildRequest(
        target="broker",
        arch=arch,
        base_image="localhost/brokkr-base:bookworm-arm64",
        info=INFO,
        ca_bundle=ca_bundle,
    )


def _values(command, flag):
    return [command[i + 1] for i, part in enumerate(command) if part == flag]


def test_podman_command_has_host_flags_platform_target_args_and_arch_tags():
    command = images.podman_build_command(_request())
    flags = containers.podman_global_flags()
    assert command[: len(flags) + 1] == ["podman", *flags]
    assert _values(command, "--platform") == ["linux/arm64"]
    assert _values(command, "--target") == ["broker"]
    assert "--format" in command and _values(command, "--format") == ["docker"]
    build_args = _values(command, "--build-arg")
    assert "BASE_IMAGE=localhost/brokkr-base:bookworm-arm64" in build_args
    assert f"REVISION={INFO.revision}" in build_args
    assert _values(command, "--tag") == [
        "localhost/brokkr-broker:sha-0123456-arm64",
        "localhost/brokkr-broker:feature-add-images-arm64",
    ]
    assert "--secret" not in command


def test_a_reproducible_podman_build_has_no_layer_cache_and_every_time_at_the_epoch():
    plain = images.podman_build_command(_request())
    assert "--layers=true" in plain and "--timestamp" not in plain
    command = images.podman_build_command(dataclasses.replace(_request(), reproducible=True))
    assert "--layers=false" in command and "--layers=true" not in command
    assert _values(command, "--timestamp") == ["0"]
    assert _values(command, "--tag") == _values(plain, "--tag")


def test_buildx_and_podman_get_the_same_tags_args_and_secret():
    request = _request(ca_bundle=Path("/etc/ssl/certs/ca-certificates.crt"))
    podman = images.podman_build_command(request)
    stripped = Path("/repo/build/images/Dockerfile.builtin-frontend")
    command = buildx.build_command(request.common_args(), stripped, request.context)
    for flag in ("--tag", "--build-arg", "--platform", "--target", "--secret"):
        assert _values(podman, flag) == _values(command, flag)
    assert _values(command, "--secret") == ["id=cacert,src=/etc/ssl/certs/ca-certificates.crt"]
    assert command[:5] == ["docker", "buildx", "build", "--builder", "default"]
    # one platform, loaded into the engine, from the copy without the syntax line
    assert "--load" in command and "--provenance=false" in command
    assert _values(command, "--file") == [str(stripped)]
    assert command[-1] == str(request.context)


def test_the_syntax_directive_is_dropped_and_line_numbers_kept():
    original = images.DOCKERFILE.read_text()
    assert original.startswith("# syntax=docker/dockerfile:")
    stripped = buildx.without_syntax_directive(original)
    assert "syntax=" not in stripped.splitlines()[0]
    assert len(stripped.splitlines()) == len(original.splitlines())
    assert stripped.splitlines()[1:] == original.splitlines()[1:]
    # a `# syntax=` comment after the first instruction is no directive: kept
    later = "FROM x\n# syntax=docker/dockerfile:1\n"
    assert buildx.without_syntax_directive(later) == later


def test_base_image_is_the_local_one_unless_requested_and_requested_expands_arch():
    assert images.base_image_for("arm64") == "localhost/brokkr-base:bookworm-arm64"
    assert (
        images.base_image_for("amd64", "mirror.example/python:3.11-{arch}")
        == "mirror.example/python:3.11-amd64"
    )


def test_image_name_refuses_an_unknown_target():
    assert (
        images.image_name("agent", "registry.example/team/") == "registry.example/team/brokkr-agent"
    )
    with pytest.raises(containers.ContainerError, match="broker, agent"):
        images.image_name("web")


def test_wheel_platforms_cover_manylinux2014_up_to_debian_12_glibc():
    names = images.wheel_platforms("linux/arm64")
    assert names[0] == "manylinux2014_aarch64"
    assert "manylinux_2_28_aarch64" in names and "manylinux_2_36_aarch64" in names
    assert not any("x86_64" in n for n in names)


def test_pip_download_is_binary_only_hash_checked_and_for_cpython_311(tmp_path):
    command = images.pip_download_command("py", tmp_path / "r.txt", "amd64", tmp_path)
    assert {"--only-binary=:all:", "--require-hashes", "--no-deps"} <= set(command)
    assert _values(command, "--python-version") == ["3.11"]
    assert "cp311" in _values(command, "--abi")


def test_committed_requirements_match_uv_lock():
    assert not images.stale_requirements(), "run `invoke images.requirements` and commit"


def test_base_image_key_changes_with_packages_and_arch():
    amd, arm = baseimages.for_arch("amd64"), baseimages.for_arch("arm64")
    assert amd.key != arm.key
    assert baseimages.BaseImage("bookworm", "amd64", ("python3",)).key != amd.key
    assert amd.tag == "localhost/brokkr-base:bookworm-amd64"
    assert amd.tarball(Path("/c")) == Path(f"/c/base-images/bookworm-amd64-{amd.key}.tar")


def test_slim_removes_docs_but_keeps_copyright(tmp_path):
    doc = tmp_path / "usr/share/doc/python3"
    doc.mkdir(parents=True)
    (doc / "copyright").write_text("licence")
    (doc / "changelog.gz").write_text("x")
    (tmp_path / "usr/share/man/man1").mkdir(parents=True)
    (tmp_path / "usr/share/man/man1/python3.1.gz").write_text("x")
    (tmp_path / "var/cache/apt/archives").mkdir(parents=True)
    (tmp_path / "var/cache/apt/archives/python3.deb").write_text("x")
    baseimages.slim(tmp_path)
    assert (doc / "copyright").read_text() == "licence"
    assert not (doc / "changelog.gz").exists()
    assert not (tmp_path / "usr/share/man/man1").exists()
    assert not (tmp_path / "var/cache/apt/archives/python3.deb").exists()
