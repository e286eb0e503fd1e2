"""Removing what dockerd leaves on the host: its bridges and its iptables rules.

dockerd creates bridges (docker0, br-<network id>) and the DOCKER* iptables chains
with jumps into them, and does not remove them when it stops. The rules are removed
by editing `iptables-save` output and loading it back, which replaces each table in
one step and keeps every rule that is not Docker's.
"""

from __future__ import annotations

import itertools
import re

DOCKER_CHAIN = re.compile(r"^DOCKER(?:-[A-Z0-9-]+)?$")
DOCKER_BRIDGE = re.compile(r"^(?:docker0|br-[0-9a-f]{12})$")


def _is_docker_chain(name: str) -> bool:
    return bool(DOCKER_CHAIN.match(name))


def _rule_is_dockers(tokens: list[str], bridges: set[str]) -> bool:
    chain = tokens[1] if len(tokens) > 1 else ""
    if _is_docker_chain(chain):
        return True
    for flag, value in itertools.pairwise(tokens):
        if flag in {"-j", "-g", "--jump", "--goto"} and _is_docker_chain(value):
            return True
        if flag in {"-i", "-o", "--in-interface", "--out-interface"} and value in bridges:
            return True
    return False


def strip_docker_rules(saved: str, bridges: set[str]) -> str:
    """`iptables-save` text without Docker's chains, the jumps into them and the
    rules naming one of `bridges`."""
    kept = []
    for line in saved.splitlines():
        if line.startswith(":") and _is_docker_chain(line[1:].split()[0]):
            continue
        if line.startswith("-A ") and _rule_is_dockers(line.split(), bridges):
            continue
        kept.append(line)
    return "\n".join(kept) + "\n"


def forward_policy(saved: str) -> str | None:
    """The filter table's FORWARD policy (ACCEPT/DROP) in `iptables-save` text."""
    table = ""
    for line in saved.splitlines():
        if line.startswith("*"):
            table = line[1:].strip()
        elif table == "filter" and line.startswith(":FORWARD "):
            return line.split()[1]
    return None


def set_forward_policy(saved: str, policy: str) -> str:
    """The same text with the filter table's FORWARD policy set to `policy`."""
    lines, table = [], ""
    for line in saved.splitlines():
        if line.startswith("*"):
            table = line[1:].strip()
        elif table == "filter" and line.startswith(":FORWARD "):
            parts = line.split()
            parts[1] = policy
            lines.append(" ".join(parts))
            continue
        lines.append(line)
    return "\n".join(lines) + "\n"


def bridge_name(network_id: str, options: dict[str, str]) -> str:
    """The Linux bridge of a Docker bridge network: its explicit name or br-<id12>."""
    return options.get("com.docker.network.bridge.name") or f"br-{network_id[:12]}"


def leftover_bridges(link_names: list[str]) -> list[str]:
    """Link names that look like Docker bridges (used when the engine is gone and
    cannot be asked which networks it had)."""
    return [name for name in link_names if DOCKER_BRIDGE.match(name)]
