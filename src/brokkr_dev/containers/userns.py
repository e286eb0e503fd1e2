"""Root of one's own files as a normal user: a user namespace with subordinate ids.

Building a root file system keeps files owned by root and by Debian's system users.
Root does that in place; a normal user does it inside a user namespace where uid and
gid 0 are the user and 1..65535 are the user's subordinate ids (/etc/subuid and
/etc/subgid, mapped by the setuid newuidmap and newgidmap of Debian's `uidmap`).
mmdebstrap --mode=unshare needs the same. Standard library only: the node image's
assembly imports this inside the namespace.
"""

from __future__ import annotations

import os
import pwd
import shutil
from dataclasses import dataclass
from pathlib import Path

from brokkr_dev.base.commands import CommandError, run
from brokkr_dev.base.errors import AutomationError

# A Debian root file system owns files up to uid 65534 (nobody); --map-auto maps
# the first range from inner id 1, so the range must hold 65535 ids or more.
NEEDED_IDS = 65536
UNSHARE = ("unshare", "--map-root-user", "--map-auto")


class UserNamespaceError(AutomationError):
    """This user cannot get a user namespace with subordinate ids; says how to fix it."""


def prefix() -> list[str]:
    """What to put before a command so it runs as root of its files: nothing as root,
    else `unshare --map-root-user --map-auto` (util-linux 2.38 or newer)."""
    return [] if os.geteuid() == 0 else list(UNSHARE)


def ranges(id_file: Path) -> list[tuple[str, int, int]]:
    """(owner, start, count) of each range in /etc/subuid or /etc/subgid."""
    try:
        lines = id_file.read_text().splitlines()
    except OSError:
        return []
    found = []
    for line in lines:
        fields = line.strip().split(":")
        if len(fields) == 3 and fields[1].isdigit() and fields[2].isdigit():
            found.append((fields[0], int(fields[1]), int(fields[2])))
    return found


def first_range(user: str, uid: int, id_file: Path) -> tuple[int, int] | None:
    """(start, count) of the user's first range, the one `--map-auto` maps."""
    for owner, start, count in ranges(id_file):
        if owner in {user, str(uid)}:
            return start, count
    return None


def free_range(etc: Path = Path("/etc")) -> str:
    """NEEDED_IDS ids after every range given out so far (from 100000, as useradd)."""
    taken = [
        start + count for name in ("subuid", "subgid") for _, start, count in ranges(etc / name)
    ]
    start = max([100000, *taken])
    return f"{start}-{start + NEEDED_IDS - 1}"


@dataclass(frozen=True)
class Problem:
    what: str
    fix: str  # the command that fixes it


def problems(
    user: str, uid: int, etc: Path = Path("/etc"), path: str | None = None
) -> list[Problem]:
    """What keeps `user` from a user namespace with subordinate ids (empty: nothing)."""
    found = []
    missing = [p for p in ("newuidmap", "newgidmap") if not shutil.which(p, path=path)]
    if missing:
        verb = "is" if len(missing) == 1 else "are"
        found.append(
            Problem(f"{' and '.join(missing)} {verb} missing", "sudo apt-get install uidmap")
        )
    if not shutil.which("unshare", path=path):
        found.append(Problem("unshare is missing", "sudo apt-get install util-linux"))
    new = free_range(etc)
    first = {name: first_range(user, uid, etc / name) for name in ("subuid", "subgid")}
    add = " ".join(f"--add-{name}s {new}" for name, ids in first.items() if ids is None)
    for name, ids in first.items():
        if ids is None:
            found.append(
                Problem(f"/etc/{name} has no range for {user}", f"sudo usermod {add} {user}")
            )
        elif ids[1] < NEEDED_IDS:
            old = f"{ids[0]}-{ids[0] + ids[1] - 1}"
            found.append(
                Problem(
                    f"{user}'s first range in /etc/{name} has {ids[1]} ids, not {NEEDED_IDS}",
                    f"sudo usermod --del-{name}s {old} --add-{name}s {new} {user}",
                )
            )
    return found


def refusal(purpose: str, found: list[Problem]) -> str:
    """One message for what `problems` found, with the commands that fix it."""
    fixes = "".join(f"\n  {fix}" for fix in dict.fromkeys(p.fix for p in found))
    return (
        f"{purpose} as a normal user needs a user namespace with subordinate ids, but "
        f"{'; '.join(p.what for p in found)}. Nothing was built. Fix it once, then re-run:"
        f"{fixes}"
    )


def ensure_available(purpose: str) -> None:
    """Refuse, naming the fix, when this user cannot be root of its files in a user
    namespace; as root nothing is needed. Tries the namespace once for real, since a
    kernel or AppArmor setting can forbid it even when the files are right."""
    if os.geteuid() == 0:
        return
    entry = pwd.getpwuid(os.geteuid())
    found = problems(entry.pw_name, entry.pw_uid)
    if found:
        raise UserNamespaceError(refusal(purpose, found))
    try:
        run([*UNSHARE, "true"], timeout=30)
    except CommandError as exc:
        raise UserNamespaceError(
            f"{purpose} as a normal user needs a user namespace, and this one is refused:\n"
            f"{exc.tail}\nNothing was built. Allow unprivileged user namespaces (sysctl "
            "kernel.unprivileged_userns_clone=1; on Ubuntu, "
            "kernel.apparmor_restrict_unprivileged_userns=0), then re-run."
        ) from None


def remove_tree(path: Path) -> None:
    """Remove a tree whose files belong to subordinate ids (a normal user can't
    outside the namespace); nothing happens when it is gone already."""
    if os.path.lexists(path):
        run([*prefix(), "rm", "-rf", "--", str(path)], timeout=600)
