"""Just enough of Make's IML to resolve the templates the Make app's connection, webhook and modules use, so that
their requests can be replayed against a real broker. Functions follow Make's documentation; anything else is refused,
so a new expression in the app fails here instead of being replayed wrong."""

from __future__ import annotations

import base64
import hashlib
import re
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

TEMPLATE = re.compile(r"\{\{((?:(?!\}\}).)*)\}\}", re.DOTALL)
TOKEN = re.compile(r"\s*(?:(?P<string>'[^']*'|\"[^\"]*\")|(?P<number>\d+(?:\.\d+)?)|(?P<name>[A-Za-z_]\w*)"
                   r"|(?P<op><=|>=|!=|[<>=+(),.\[\]]))")  # fmt: skip


class ImlError(ValueError):
    """An expression this evaluator does not know: extend it (following Make's documentation) before replaying."""


def _sha256(text: str, encoding: str = "hex") -> str:
    digest = hashlib.sha256(str(text).encode()).digest()
    if encoding == "base64":
        return base64.b64encode(digest).decode()
    if encoding == "hex":
        return digest.hex()
    raise ImlError(f"sha256 encoding {encoding!r}")


def _replace(text: str, search: str, replacement: str) -> str:
    """A search written /pattern/flags is a regular expression (replacing every match only with the g flag)."""
    regex = re.fullmatch(r"/(.*)/([gimsuy]*)", search, re.DOTALL)
    if regex is None:
        return str(text).replace(search, replacement)
    pattern, flags = regex.groups()
    options = re.IGNORECASE if "i" in flags else 0
    return re.sub(pattern, replacement.replace("\\", "\\\\"), str(text), count=0 if "g" in flags else 1, flags=options)


def _empty(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == {}


def _date(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "sha256": _sha256,
    "substring": lambda text, start, end=None: str(text)[int(start) : None if end is None else int(end)],
    "replace": _replace,
    "join": lambda items, separator: separator.join(str(item) for item in items),
    "ifempty": lambda value, fallback: fallback if _empty(value) else value,
    "addSeconds": lambda date, seconds: _date(date) + timedelta(seconds=float(seconds)),
    "addMinutes": lambda date, minutes: _date(date) + timedelta(minutes=float(minutes)),
    "omit": lambda collection, *keys: {k: v for k, v in collection.items() if k not in keys},
    "last": lambda items: items[-1] if items else None,
}
KEYWORDS: dict[str, Callable[[], Any]] = {
    "now": lambda: datetime.now(UTC),
    "uuid": lambda: str(uuid.uuid4()),
    "true": lambda: True,
    "false": lambda: False,
    "null": lambda: None,
    "emptystring": lambda: "",
    "emptyarray": lambda: [],
}


class _Parser:
    def __init__(self, source: str, context: Mapping[str, Any]) -> None:
        self.tokens = self._tokenize(source)
        self.position = 0
        self.context = context

    @staticmethod
    def _tokenize(source: str) -> list[tuple[str, str]]:
        tokens, position = [], 0
        while position < len(source.rstrip()):
            match = TOKEN.match(source, position)
            if match is None or match.end() == position:
                raise ImlError(f"cannot read {source[position:]!r}")
            kind = match.lastgroup
            assert kind is not None
            tokens.append((kind, match.group(kind)))
            position = match.end()
        return tokens

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def take(self, value: str | None = None) -> tuple[str, str]:
        token = self.peek()
        if token is None or (value is not None and token[1] != value):
            raise ImlError(f"expected {value!r}, found {token!r}")
        self.position += 1
        return token

    def parse(self) -> Any:
        value = self.comparison()
        if self.peek() is not None:
            raise ImlError(f"unexpected {self.peek()!r}")
        return value

    def comparison(self) -> Any:
        left = self.sum()
        token = self.peek()
        if token is not None and token[1] in ("<", ">", "<=", ">=", "=", "!="):
            self.take()
            right = self.sum()
            if isinstance(left, datetime) or isinstance(right, datetime):
                left, right = _date(left), _date(right)
            return {"<": left < right, ">": left > right, "<=": left <= right, ">=": left >= right,
                    "=": left == right, "!=": left != right}[token[1]]  # fmt: skip
        return left

    def sum(self) -> Any:
        value = self.postfix()
        while self.peek() == ("op", "+"):
            self.take()
            right = self.postfix()
            value = value + right if not isinstance(value, str) else value + str(right)
        return value

    def postfix(self) -> Any:
        value = self.primary()
        while (token := self.peek()) is not None and token[1] in (".", "["):
            self.take()
            if token[1] == ".":
                key: Any = self.take()[1]
            else:
                key = self.comparison()
                self.take("]")
            value = value.get(key) if isinstance(value, Mapping) else None
        return value

    def primary(self) -> Any:
        kind, text = self.take()
        if kind == "string":
            return text[1:-1]
        if kind == "number":
            return float(text) if "." in text else int(text)
        if text == "(":
            value = self.comparison()
            self.take(")")
            return value
        if kind != "name":
            raise ImlError(f"unexpected {text!r}")
        if self.peek() == ("op", "("):
            if text not in FUNCTIONS:
                raise ImlError(f"unknown function {text}()")
            self.take("(")
            args = []
            while self.peek() != ("op", ")"):
                args.append(self.comparison())
                if self.peek() == ("op", ","):
                    self.take()
            self.take(")")
            return FUNCTIONS[text](*args)
        if text in KEYWORDS:
            return KEYWORDS[text]()
        if text not in self.context:
            raise ImlError(f"unknown variable {text}")
        return self.context[text]


# The variables Make gives IML in connections, webhooks and modules, as far as this app uses them.
ROOTS = {
    "common",
    "oauth",
    "temp",
    "query",
    "body",
    "data",
    "connection",
    "parameters",
    "webhook",
    "item",
    "statusCode",
}


def check(expression: str) -> None:
    """Refuse an expression with a function, keyword or variable this evaluator does not know, without running it."""
    tokens = _Parser._tokenize(expression)
    for index, (kind, text) in enumerate(tokens):
        if kind != "name" or (index > 0 and tokens[index - 1][1] == "."):
            continue
        calls = index + 1 < len(tokens) and tokens[index + 1][1] == "("
        known = text in FUNCTIONS if calls else text in KEYWORDS or text in ROOTS
        if not known:
            raise ImlError(f"{expression!r}: unknown {'function' if calls else 'name'} {text}")


def evaluate(expression: str, context: Mapping[str, Any]) -> Any:
    return _Parser(expression, context).parse()


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return str(value)


def resolve(value: Any, context: Mapping[str, Any]) -> Any:
    """A directive with its templates resolved: "{{expr}}" alone keeps the value's type; mixed text joins strings."""
    if isinstance(value, str):
        whole = TEMPLATE.fullmatch(value)
        if whole is not None:
            return evaluate(whole.group(1), context)
        return TEMPLATE.sub(lambda match: _text(evaluate(match.group(1), context)), value)
    if isinstance(value, dict):
        return {key: resolve(item, context) for key, item in value.items()}
    if isinstance(value, list):
        return [resolve(item, context) for item in value]
    return value


def expressions(value: Any) -> list[str]:
    """Every {{...}} expression in a directive."""
    if isinstance(value, str):
        return [match.group(1) for match in TEMPLATE.finditer(value)]
    if isinstance(value, dict):
        return [found for item in value.values() for found in expressions(item)]
    if isinstance(value, list):
        return [found for item in value for found in expressions(item)]
    return []
