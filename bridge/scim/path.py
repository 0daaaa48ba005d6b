"""PATCH operation paths (RFC 7644 §3.5.2, Figure 7: "SCIM PATCH PATH Rule")::

    PATH = attrPath / valuePath [subAttr]

with ``attrPath``, ``valuePath`` and ``subAttr`` as in the filter grammar (§3.4.2.2, Figure 1;
see :mod:`bridge.scim.filter_parser`, whose tokenizer and value-filter parser this module reuses, so
the same decisions hold: case-insensitive keywords, whitespace between tokens ignored, paths
inside ``[...]`` relative).

Examples (§3.5.2, Figure 8) and the shapes they parse to::

    members                                   PatchPath(AttrPath(None, "members"))
    name.familyName                           PatchPath(AttrPath(None, "name", "familyName"))
    addresses[type eq "work"]                 PatchPath(AttrPath(None, "addresses"), <filter>)
    members[value eq "2819c223..."].displayName
                                              PatchPath(AttrPath(None, "members"), <filter>,
                                                        "displayName")
    urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager
                                              PatchPath(AttrPath(<urn>, "manager"))

Bare schema URN: some clients (Entra ID among them) send the extension schema URN itself as the
path, with the extension object as the value.  That parses to ``AttrPath(schema=<urn>,
attr="")``.  A path is taken to be a bare schema URN when it is one word whose next-to-last
colon segment is a version (``urn:...:2.0:User``) - the shape of every RFC 7643 schema URN.
Consequently an attribute directly under a schema URN that *ends* in a version segment
(``urn:example:1.0`` + ``foo``) cannot be addressed; no standard schema is shaped that way.
"""

from __future__ import annotations

from dataclasses import dataclass
from string import ascii_letters, digits

from bridge.errors import InvalidPath
from bridge.scim._syntax import Kind, Problem, check_length, report, show
from bridge.scim.filter import AttrPath, Filter, render, render_attr_path
from bridge.scim.filter_parser import FilterParser, attr_path_at, check_name, check_schema_uri

__all__ = ["PatchPath", "PathSyntaxError", "is_schema_urn", "parse_path", "render_path"]

_NAME_CHARS = frozenset(ascii_letters + digits + "-_")
_PATH_HINT = 'expected an attribute path, e.g. name.givenName or emails[type eq "work"].value'


@dataclass(frozen=True)
class PatchPath:
    """A parsed PATCH ``path`` (RFC 7644 §3.5.2).

    * ``attr``: the attribute addressed.  With a ``filter`` it is the multi-valued attribute
      (never has ``sub``); ``AttrPath(<urn>, "")`` is a bare schema URN (no filter, no sub).
    * ``filter``: the value filter between ``[`` and ``]``; its paths are relative to ``attr``.
    * ``sub``: the sub-attribute after the filter (``emails[type eq "work"].value``), only
      together with a filter; ``name.givenName`` is ``attr=AttrPath(None, "name", "givenName")``.
    """

    attr: AttrPath
    filter: Filter | None = None
    sub: str | None = None

    def __post_init__(self) -> None:
        bare = not self.attr.attr
        if bare and (self.attr.schema is None or self.filter is not None or self.sub is not None):
            raise ValueError("a bare schema path needs a schema and takes no filter or sub")
        if self.filter is not None and self.attr.sub is not None:
            raise ValueError("a value filter applies to an attribute, not a sub-attribute")
        if self.sub is not None and self.filter is None:
            raise ValueError("sub is only for the form attr[filter].sub; use attr.sub")


class PathSyntaxError(InvalidPath):
    """A PATCH path that does not parse; ``column`` is 1-based into ``text``.  The SCIM
    ``detail`` is the message, the path (a window of it, if long) and a caret under the column.
    """

    def __init__(self, text: str, column: int, reason: str):
        super().__init__(report(text, column, reason))
        self.text = text
        self.column = column
        self.reason = reason


def parse_path(
    text: str, *, max_length: int = 4096, max_depth: int = 32, max_terms: int = 128
) -> PatchPath:
    """Parse a PATCH operation's ``path`` (RFC 7644 §3.5.2); raise PathSyntaxError."""
    try:
        check_length(text, max_length, "path")
        parser = FilterParser(text, "path", max_depth=max_depth, max_terms=max_terms)
        return _read_path(parser)
    except Problem as problem:
        raise PathSyntaxError(text, problem.pos + 1, problem.message()) from None
    except RecursionError:  # only reachable with a max_depth far above the default
        raise PathSyntaxError(text, 1, "path nested too deeply at column 1") from None


def _read_path(parser: FilterParser) -> PatchPath:
    """``PATH = attrPath / valuePath [subAttr]``, then the end of the text."""
    head = parser.advance()
    if head.kind is Kind.END:
        raise Problem(0, "empty path", _PATH_HINT)
    if head.kind is not Kind.WORD:
        parser.fail(head, _PATH_HINT)
    if parser.peek().kind is Kind.END and is_schema_urn(head.text):
        check_schema_uri(head.text, head.pos, head.text)
        return PatchPath(AttrPath(head.text, ""))
    attr = attr_path_at(head.text, head.pos)
    if parser.peek().kind is not Kind.LBRACKET:
        _expect_end(parser, "expected '[' or end of path")
        return PatchPath(attr)
    if attr.sub is not None:
        why = 'a value filter follows a multi-valued attribute, e.g. emails[type eq "work"]'
        raise Problem(parser.peek().pos, f"'[' after sub-attribute path {show(head.text)}", why)
    value_filter = parser.value_filter()
    sub = _sub_attr(parser)
    _expect_end(parser, "expected '.' and a sub-attribute, or end of path")
    return PatchPath(attr, value_filter, sub)


def _sub_attr(parser: FilterParser) -> str | None:
    """The optional ``subAttr`` after ``]``."""
    token = parser.peek()
    if token.kind is not Kind.WORD or not token.text.startswith("."):
        return None
    parser.advance()
    check_name(token.text[1:], token.pos + 1, token.text, "sub-attribute name")
    return token.text[1:]


def _expect_end(parser: FilterParser, why: str) -> None:
    token = parser.peek()
    if token.kind is not Kind.END:
        parser.fail(token, why)


def is_schema_urn(word: str) -> bool:
    """Whether ``word`` looks like a whole schema URN (``urn:...:<version>:<Name>``) rather than
    an attribute path under one (see the module docstring)."""
    segments = word.split(":")
    if len(segments) < 3 or not _is_version(segments[-2]):
        return False
    name = segments[-1]
    return name[:1] in ascii_letters and set(name) <= _NAME_CHARS


def _is_version(segment: str) -> bool:
    parts = segment.split(".")
    return all(part and set(part) <= set(digits) for part in parts)


def render_path(p: PatchPath) -> str:
    """Canonical text for ``p``; ``parse_path(render_path(p)) == p``."""
    text = render_attr_path(p.attr)
    if p.filter is not None:
        text += f"[{render(p.filter)}]"
    return text if p.sub is None else f"{text}.{p.sub}"
