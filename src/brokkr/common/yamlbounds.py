"""Bounds a deployment object's YAML must keep before anything loads it.

Two shapes make a small text expensive for whoever reads it:

- deep nesting: libyaml's composer recurses in C and overflows the stack, the
  pure-Python one hits RecursionError;
- aliases: `*name` stands for the whole node anchored as `&name`, so a few hundred
  bytes can stand for hundreds of millions of nodes ("billion laughs"). The loader
  shares the aliased objects, so loading stays cheap, but whatever walks the result
  (JSON for the Kubernetes API, a deep copy) expands every one of them.

`check` reads the event stream only (no tree is built) and counts how many nodes
the aliases add; the broker runs it before it stores an object, the agent before
it loads one it received (an object stored by an older broker included).
"""

from __future__ import annotations

from typing import Any

import yaml

MAX_DEPTH = 100
# Nodes that aliases may add to what is written out, over the whole body. Reusing a
# block of a few hundred nodes a few dozen times stays far below it; a bomb passes
# it after a handful of aliases.
MAX_ALIAS_NODES = 100_000
LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

_SCALAR, _ALIAS, _DOCUMENT_START = yaml.ScalarEvent, yaml.AliasEvent, yaml.DocumentStartEvent
_MAPPING_START, _MAPPING_END = yaml.MappingStartEvent, yaml.MappingEndEvent
_SEQUENCE_START, _SEQUENCE_END = yaml.SequenceStartEvent, yaml.SequenceEndEvent


class YamlBoundError(ValueError):
    """The YAML passes a bound: `code` and `details` are what the API answers with."""

    def __init__(self, code: str, message: str, details: dict[str, Any]) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details


def _line(event: Any) -> int:
    return event.start_mark.line + 1 if event.start_mark else 0


def _too_deep(line: int | None) -> YamlBoundError:
    where = f" (line {line})" if line else ""
    details: dict[str, Any] = {"max_depth": MAX_DEPTH}
    if line:
        details["line"] = line
    return YamlBoundError(
        "yaml_too_deep", f"yaml_content nests deeper than {MAX_DEPTH} levels{where}", details
    )


def _too_many_aliases(anchor: str, line: int) -> YamlBoundError:
    return YamlBoundError(
        "yaml_aliases_expand_too_far",
        f"yaml_content's aliases expand to more than {MAX_ALIAS_NODES} nodes "
        f"(passed at alias *{anchor}, line {line}); write the repeated parts out "
        "or use fewer aliases",
        {"max_alias_nodes": MAX_ALIAS_NODES, "anchor": anchor, "line": line},
    )


def check(text: str, loader: Any = LOADER) -> None:
    """Raise YamlBoundError past a bound; YAML syntax errors propagate as yaml.YAMLError."""
    try:
        _walk(yaml.parse(text, Loader=loader))
    except yaml.YAMLError as exc:
        if "maximum nesting depth" in str(exc):
            # libyaml's scanner (PyYAML >= 6.0.4 wheels) stops at its own depth limit
            # while reading ahead, before the event count reaches MAX_DEPTH.
            raise _too_deep(None) from None
        raise


def _walk(events: Any) -> None:
    # Per open collection: its node count so far and its anchor; sizes of the
    # anchors seen in the current document, counted with their own aliases expanded.
    # (Compared by class, not isinstance: this loop runs once per YAML event.)
    counts: list[int] = []
    anchors: list[str | None] = []
    sizes: dict[str, int] = {}
    added = 0
    for event in events:
        kind = event.__class__
        if kind is _SCALAR:
            nodes, anchor = 1, event.anchor
        elif kind is _MAPPING_START or kind is _SEQUENCE_START:
            if len(counts) >= MAX_DEPTH:
                raise _too_deep(_line(event))
            counts.append(1)
            anchors.append(event.anchor)
            continue
        elif kind is _MAPPING_END or kind is _SEQUENCE_END:
            nodes, anchor = counts.pop(), anchors.pop()
        elif kind is _ALIAS:
            nodes, anchor = _alias_nodes(event, sizes, anchors), None
            added += nodes
            if added > MAX_ALIAS_NODES:
                raise _too_many_aliases(str(event.anchor), _line(event))
        elif kind is _DOCUMENT_START:
            sizes.clear()
            continue
        else:
            continue
        if anchor:
            sizes[anchor] = nodes
        if counts:
            counts[-1] += nodes


def _alias_nodes(event: Any, sizes: dict[str, int], open_anchors: list[str | None]) -> int:
    """How many nodes the alias stands for (0 for an undefined one: the loader names it)."""
    anchor = event.anchor
    if anchor in sizes:
        return sizes[anchor]
    if anchor in open_anchors:
        raise YamlBoundError(
            "yaml_recursive_alias",
            f"yaml_content's alias *{anchor} (line {_line(event)}) refers to a node that "
            "contains it; Kubernetes objects cannot hold cycles",
            {"anchor": anchor, "line": _line(event)},
        )
    return 0
