"""SCIM filter expressions (RFC 7644 §3.4.2.2): the immutable AST, its canonical rendering and
the attribute paths a filter compares.  The text is parsed into this AST by
:mod:`bridge.scim.filter_parser`, which also states how the grammar is read.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TypeAlias, assert_never

__all__ = [
    "COMPARE_OPS",
    "And",
    "AttrPath",
    "Compare",
    "Filter",
    "Not",
    "Or",
    "Present",
    "Value",
    "ValuePath",
    "attr_paths",
    "render",
    "render_attr_path",
    "render_value",
]

COMPARE_OPS = ("eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le")

Value: TypeAlias = str | int | float | bool | None


@dataclass(frozen=True)
class AttrPath:
    """``attrPath`` (RFC 7644 §3.4.2.2, §3.10): ``[schema ":"] attr ["." sub]``.

    ``schema`` is the URN prefix when the path was URN-qualified, else None.  In a PATCH path
    a bare schema URN is ``AttrPath(schema=<urn>, attr="")`` (see :mod:`bridge.scim.path`).
    """

    schema: str | None
    attr: str
    sub: str | None = None


@dataclass(frozen=True)
class Compare:
    """``attrPath SP compareOp SP compValue``; ``op`` is lower-case, one of COMPARE_OPS."""

    path: AttrPath
    op: str
    value: Value


@dataclass(frozen=True)
class Present:
    """``attrPath SP "pr"``."""

    path: AttrPath


@dataclass(frozen=True)
class And:
    left: Filter
    right: Filter


@dataclass(frozen=True)
class Or:
    left: Filter
    right: Filter


@dataclass(frozen=True)
class Not:
    inner: Filter


@dataclass(frozen=True)
class ValuePath:
    """``attrPath "[" valFilter "]"``: ``filter`` applies to one value of ``path`` at a time,
    and its paths are relative to it: ``emails[type eq "work"]`` is
    ``ValuePath(AttrPath(None, "emails"), Compare(AttrPath(None, "type"), "eq", "work"))``."""

    path: AttrPath
    filter: Filter


Filter: TypeAlias = Compare | Present | And | Or | Not | ValuePath


# --- rendering ---------------------------------------------------------------------------

_OR_LEVEL, _AND_LEVEL, _ATOM_LEVEL = 0, 1, 2


def render(f: Filter) -> str:
    """Canonical text for ``f``: lower-case keywords, single spaces, JSON values, only the
    parentheses precedence needs; ``parse(render(f)) == f``."""
    match f:
        case Or(left, right):
            return f"{_operand(left, _OR_LEVEL)} or {_operand(right, _AND_LEVEL)}"
        case And(left, right):
            return f"{_operand(left, _AND_LEVEL)} and {_operand(right, _ATOM_LEVEL)}"
        case Not(inner):
            return f"not ({render(inner)})"
        case ValuePath(path, inner):
            return f"{render_attr_path(path)}[{render(inner)}]"
        case Present(path):
            return f"{render_attr_path(path)} pr"
        case Compare(path, op, value):
            return f"{render_attr_path(path)} {op} {render_value(value)}"
        case _:
            assert_never(f)


def _operand(f: Filter, level: int) -> str:
    """``f`` rendered as an operand needing at least ``level`` binding strength."""
    match f:
        case Or():
            strength = _OR_LEVEL
        case And():
            strength = _AND_LEVEL
        case _:
            strength = _ATOM_LEVEL
    text = render(f)
    return text if strength >= level else f"({text})"


def render_attr_path(path: AttrPath) -> str:
    """``[schema ":"] attr ["." sub]``; a bare schema (``attr == ""``) renders as the URN."""
    if not path.attr:
        return path.schema or ""
    text = f"{path.schema}:{path.attr}" if path.schema else path.attr
    return f"{text}.{path.sub}" if path.sub is not None else text


def render_value(value: Value) -> str:
    """A JSON literal (RFC 7159) for a comparison value."""
    match value:
        case None:
            return "null"
        case bool():
            return "true" if value else "false"
        case int():
            return str(value)
        case float() if math.isfinite(value):
            return repr(value)
        case str():
            return _json_string(value)
    raise ValueError(f"not a renderable SCIM filter value: {value!r}")


_RENDER_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
}


def _json_string(value: str) -> str:
    """A JSON string (RFC 7159 §7): quote, backslash and control characters escaped."""
    return '"' + "".join(_render_char(char) for char in value) + '"'


def _render_char(char: str) -> str:
    if char in _RENDER_ESCAPES:
        return _RENDER_ESCAPES[char]
    return f"\\u{ord(char):04x}" if ord(char) < 0x20 else char


# --- analysis ----------------------------------------------------------------------------


def attr_paths(f: Filter) -> Iterator[AttrPath]:
    """Every attribute path ``f`` compares, in text order (repeats included).  Value-filter
    paths are combined with their parent: ``emails[type eq "work"]`` yields
    ``AttrPath(None, "emails", "type")``."""
    match f:
        case Compare(path=path) | Present(path=path):
            yield path
        case And(left, right) | Or(left, right):
            yield from attr_paths(left)
            yield from attr_paths(right)
        case Not(inner):
            yield from attr_paths(inner)
        case ValuePath(path, inner):
            for sub in attr_paths(inner):
                yield AttrPath(path.schema, path.attr, sub.attr)
        case _:
            assert_never(f)
