"""The `${{ }}` expressions of our workflows, evaluated the way GitHub does.

Literals, context paths (`github.ref_name`, `steps.key.outputs.value`), `==` `!=`
`!` `&&` `||`, parentheses and the functions `success() always() failure()
cancelled() startsWith() endsWith() contains() hashFiles()`. Anything else is refused
with an `ExpressionError` that quotes the expression, so a workflow never runs with a
guessed value.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from brokkr_dev.base.errors import AutomationError

Value = str | bool | float | None

TOKEN = re.compile(
    r"\s*(?:(?P<string>'(?:[^']|'')*')|(?P<number>\d+(?:\.\d+)?)"
    r"|(?P<op>==|!=|&&|\|\||[!().,\[\]])|(?P<name>[A-Za-z_][A-Za-z0-9_-]*))"
)
PLACEHOLDER = re.compile(r"\$\{\{(.*?)\}\}", re.DOTALL)
# Contexts whose missing members are an empty value on GitHub; other contexts are
# fully known, so a missing member there is a typo or something we do not play.
OPEN_CONTEXTS = frozenset({"env", "vars", "secrets", "steps", "needs", "inputs"})


class ExpressionError(AutomationError):
    """An expression the player cannot evaluate; the message quotes it."""


@dataclass
class Context:
    """What expressions can see. `secrets` is always empty: the player holds none."""

    workspace: Path
    github: dict[str, str] = field(default_factory=dict)
    runner: dict[str, str] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    vars: dict[str, str] = field(default_factory=dict)
    steps: dict[str, dict[str, Any]] = field(default_factory=dict)

    def root(self, name: str) -> Mapping[str, Any]:
        contexts: dict[str, Mapping[str, Any]] = {
            "github": self.github,
            "runner": self.runner,
            "env": self.env,
            "vars": self.vars,
            "secrets": {},
            "steps": self.steps,
            "needs": {},
            "inputs": {},
        }
        if name not in contexts:
            raise KeyError(name)
        return contexts[name]


def substitute(text: str, context: Context) -> str:
    """`text` with every `${{ expr }}` replaced by its value as a string."""
    return PLACEHOLDER.sub(lambda match: as_string(evaluate(match.group(1), context)), text)


def condition(text: str | bool | None, context: Context) -> bool:
    """An `if:` value: a bare expression or one wrapped in `${{ }}`; absent is true."""
    if text is None:
        return True
    if isinstance(text, bool):
        return text
    stripped = text.strip()
    whole = PLACEHOLDER.fullmatch(stripped)
    return truthy(evaluate(whole.group(1) if whole else stripped, context))


def evaluate(expression: str, context: Context) -> Value:
    parser = _Parser(expression, context)
    value = parser.expression()
    parser.expect_end()
    return value


def as_string(value: Value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else str(value)
    return value


def truthy(value: Value) -> bool:
    return value not in (None, False, "", 0.0)


def equal(left: Value, right: Value) -> bool:
    """GitHub compares strings case-insensitively, and other types by value."""
    if isinstance(left, str) and isinstance(right, str):
        return left.casefold() == right.casefold()
    return left == right


def hash_files(workspace: Path, patterns: list[str]) -> str:
    """sha256 over the sha256 of each file the patterns match (sorted), hex; '' if none.

    Patterns are globs relative to the workspace (`**` crosses folders); a pattern
    starting with `!` leaves files out.
    """
    matched: set[Path] = set()
    for pattern in patterns:
        exclude = pattern.startswith("!")
        glob = pattern.lstrip("!")
        # A trailing `**` matches files on GitHub; pathlib's matches folders only.
        glob = f"{glob}/*" if glob == "**" or glob.endswith("/**") else glob
        found = {path for path in workspace.glob(glob) if path.is_file()}
        matched = matched - found if exclude else matched | found
    if not matched:
        return ""
    digest = hashlib.sha256()
    for path in sorted(matched):
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


class _Parser:
    """Recursive descent over the tokens; evaluates as it parses."""

    def __init__(self, expression: str, context: Context) -> None:
        self.source = expression.strip()
        self.context = context
        self.tokens = self._tokenize(self.source)
        self.position = 0

    def _tokenize(self, text: str) -> list[tuple[str, str]]:
        tokens = []
        position = 0
        while position < len(text):
            match = TOKEN.match(text, position)
            if not match or match.end() == position:
                if not text[position:].strip():
                    break
                raise self.error(f"unexpected text {text[position:].strip()[:20]!r}")
            kind = match.lastgroup or ""
            tokens.append((kind, match.group(kind)))
            position = match.end()
        return tokens

    def error(self, reason: str) -> ExpressionError:
        return ExpressionError(
            f"cannot evaluate `${{{{ {self.source} }}}}`: {reason}; the workflow player "
            "knows literals, contexts, == != ! && || and success() always() failure() "
            "cancelled() startsWith() endsWith() contains() hashFiles() "
            "(src/brokkr_dev/base/workflow/expressions.py)"
        )

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def take(self, value: str | None = None) -> tuple[str, str]:
        token = self.peek()
        if token is None or (value is not None and token[1] != value):
            raise self.error(f"expected {value or 'more'} at token {self.position + 1}")
        self.position += 1
        return token

    def accept(self, value: str) -> bool:
        token = self.peek()
        if token is not None and token[0] == "op" and token[1] == value:
            self.position += 1
            return True
        return False

    def expect_end(self) -> None:
        if self.peek() is not None:
            raise self.error(f"unexpected {self.peek()[1]!r}")  # type: ignore[index]

    def expression(self) -> Value:
        value = self.conjunction()
        while self.accept("||"):
            right = self.conjunction()
            value = value if truthy(value) else right
        return value

    def conjunction(self) -> Value:
        value = self.negation()
        while self.accept("&&"):
            right = self.negation()
            value = right if truthy(value) else value
        return value

    def negation(self) -> Value:
        if self.accept("!"):
            return not truthy(self.negation())
        return self.comparison()

    def comparison(self) -> Value:
        left = self.primary()
        if self.accept("=="):
            return equal(left, self.primary())
        if self.accept("!="):
            return not equal(left, self.primary())
        return left

    def primary(self) -> Value:
        kind, text = self.take()
        if kind == "string":
            return text[1:-1].replace("''", "'")
        if kind == "number":
            return float(text)
        if kind == "op" and text == "(":
            value = self.expression()
            self.take(")")
            return value
        if kind != "name":
            raise self.error(f"unexpected {text!r}")
        literals: dict[str, Value] = {"true": True, "false": False, "null": None}
        if text in literals:
            return literals[text]
        if self.accept("("):
            return self.call(text)
        return self.path(text)

    def call(self, name: str) -> Value:
        arguments: list[Value] = []
        if not self.accept(")"):
            arguments.append(self.expression())
            while self.accept(","):
                arguments.append(self.expression())
            self.take(")")
        functions: dict[str, Callable[[list[Value]], Value]] = {
            # The player stops at the first failure, so whatever runs follows success.
            "success": lambda _: True,
            "always": lambda _: True,
            "failure": lambda _: False,
            "cancelled": lambda _: False,
            "startsWith": lambda a: _text(a, 0).casefold().startswith(_text(a, 1).casefold()),
            "endsWith": lambda a: _text(a, 0).casefold().endswith(_text(a, 1).casefold()),
            "contains": lambda a: _text(a, 1).casefold() in _text(a, 0).casefold(),
            "hashFiles": lambda a: hash_files(self.context.workspace, [as_string(v) for v in a]),
        }
        if name not in functions:
            raise self.error(f"unknown function {name}()")
        try:
            return functions[name](arguments)
        except IndexError:
            raise self.error(f"{name}() needs more arguments") from None

    def path(self, name: str) -> Value:
        try:
            current: Any = self.context.root(name)
        except KeyError:
            raise self.error(f"unknown context {name!r}") from None
        walked = name
        open_context = name in OPEN_CONTEXTS
        while True:
            if self.accept("."):
                member = self.take()[1]
            elif self.accept("["):
                member = as_string(self.expression())
                self.take("]")
            else:
                break
            walked += f".{member}"
            if isinstance(current, Mapping) and member in current:
                current = current[member]
            elif open_context:
                current = None
            else:
                raise self.error(f"{walked} is not known to the player")
        if isinstance(current, Mapping):
            raise self.error(f"{walked} is an object, not a value")
        return current


def _text(arguments: list[Value], index: int) -> str:
    return as_string(arguments[index])
