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

_OPEN = (yaml.MappingStartEvent, yaml.SequenceStartEvent)
_CLOSE = (yaml.MappingEndEvent, yaml.SequenceEndEvent)


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
    # One [nodes, anchor] entry per open collection; sizes of the anchors seen in
    # the current document, counted with their own aliases expanded.
    open_nodes: list[list[Any]] = []
    sizes: dict[str, int] = {}
    added = 0
    for event in events:
        if isinstance(event, yaml.DocumentStartEvent):
            sizes.clear()
            continue
        if isinstance(event, _OPEN):
            if len(open_nodes) >= MAX_DEPTH:
                raise _too_deep(_line(event))
            open_nodes.append([1, event.anchor])
            continue
        if isinstance(event, _CLOSE):
            nodes, anchor = open_nodes.pop()
        elif isinstance(event, yaml.ScalarEvent):
            nodes, anchor = 1, event.anchor
        elif isinstance(event, yaml.AliasEvent):
            nodes, anchor = _alias_nodes(event, sizes, open_nodes), None
            added += nodes
            if added > MAX_ALIAS_NODES:
                raise _too_many_aliases(str(event.anchor), _line(event))
        else:
            continue
        if anchor:
            sizes[anchor] = nodes
        if open_nodes:
            open_nodes[-1][0] += nodes


def _alias_nodes(event: Any, sizes: dict[str, int], open_nodes: list[list[Any]]) -> int:
    """How many nodes the alias stands for (0 for an undefined one: the loader names it)."""
    anchor = event.anchor
    if anchor in sizes:
        return sizes[anchor]
    if any(entry[1] == anchor for entry in open_nodes):
        raise YamlBoundError(
            "yaml_recursive_alias",
            f"yaml_content's alias *{anchor} (line {_line(event)}) refers to a node that "
            "contains it; Kubernetes objects cannot hold cycles",
            {"anchor": anchor, "line": _line(event)},
        )
    return 0
