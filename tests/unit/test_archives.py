"""Safe extraction of archives we did not write, with and without Python's filters."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from brokkr_dev.base import archives


def member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    return info


@pytest.mark.parametrize(
    "bad",
    [
        member("/etc/passwd"),
        member("a/../../escape"),
        member("dev/null", tarfile.CHRTYPE),
        member("a/link", tarfile.SYMTYPE, "../../etc"),
        member("a/abs", tarfile.SYMTYPE, "/etc/shadow"),
        member("hard", tarfile.LNKTYPE, "../outside"),
    ],
    ids=lambda m: m.name,
)
def test_members_that_would_leave_the_destination_are_refused(bad: tarfile.TarInfo) -> None:
    with pytest.raises(archives.UnsafeArchive, match=bad.name):
        archives.check_members([member("ok/file"), bad])


def test_links_that_stay_inside_pass() -> None:
    archives.check_members(
        [
            member("a/b/file"),
            member("a/b/sibling", tarfile.SYMTYPE, "../c"),
            member("a/hard", tarfile.LNKTYPE, "a/b/file"),
        ]
    )


def archive(*members: tuple[tarfile.TarInfo, bytes]) -> io.BytesIO:
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w") as tar:
        for info, content in members:
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    data.seek(0)
    return data


@pytest.fixture(params=["python filters", "our checks"])
def python(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both paths: Python >= 3.11.4's filters, and Debian 12's 3.11.2 without them."""
    if request.param == "our checks":
        monkeypatch.delattr(tarfile, "data_filter", raising=False)
    return request.param


def test_a_plain_archive_is_extracted(tmp_path: Path, python: str) -> None:
    with tarfile.open(fileobj=archive((member("dir/hello.txt"), b"hello"))) as tar:
        archives.extract_all(tar, tmp_path)
    assert (tmp_path / "dir/hello.txt").read_text() == "hello"


def test_an_escaping_archive_writes_nothing_outside(tmp_path: Path, python: str) -> None:
    inside = tmp_path / "inside"
    inside.mkdir()
    escaping = archive((member("../escaped"), b"x"))
    with tarfile.open(fileobj=escaping) as tar, pytest.raises(tarfile.TarError):
        archives.extract_all(tar, inside)
    assert not (tmp_path / "escaped").exists()
