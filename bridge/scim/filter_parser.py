"""Parsing SCIM filter expressions (RFC 7644 §3.4.2.2) into the AST of :mod:`bridge.scim.filter`.

The grammar is Figure 1 of RFC 7644::

    FILTER    = attrExp / logExp / valuePath / *1"not" "(" FILTER ")"
    valuePath = attrPath "[" valFilter "]"
    valFilter = attrExp / logExp / *1"not" "(" valFilter ")"
    attrExp   = (attrPath SP "pr") / (attrPath SP compareOp SP compValue)
    logExp    = FILTER SP ("and" / "or") SP FILTER
    compValue = false / null / true / number / string      ; JSON (RFC 7159)
    compareOp = "eq" / "ne" / "co" / "sw" / "ew" / "gt" / "lt" / "ge" / "le"
    attrPath  = [URI ":"] ATTRNAME *1subAttr
    ATTRNAME  = ALPHA *(nameChar)
    nameChar  = "-" / "_" / DIGIT / ALPHA
    subAttr   = "." ATTRNAME

read with these decisions:

* Operators, ``and``/``or``/``not``, ``pr`` and ``true``/``false``/``null`` are
  case-insensitive (§3.4.2.2: "Attribute names and attribute operators used in filters are
  case insensitive").  Attribute names and schema URNs are kept *as written*; resolving them
  (case-insensitively, RFC 7643 §2.1) is the consumer's job.
* Precedence is ``not`` > ``and`` > ``or`` (§3.4.2.2); ``and``/``or`` associate to the left, so
  ``a and b and c`` is ``And(And(a, b), c)``.  Parentheses group and leave no node behind.
* ``not`` must be followed by a parenthesised filter, with or without a space (the ABNF has
  none; the RFC's own example has one - erratum 7319).
* Whitespace (space, tab, CR, LF; any amount) separates tokens; none is needed next to
  parentheses, brackets or quotes.
* A URN-qualified path is split at its *last* colon: ``urn:...:2.0:User:name.givenName`` is
  schema ``urn:...:2.0:User``, attribute ``name``, sub-attribute ``givenName``.  ``$ref`` is
  accepted wherever an attribute name is (RFC 7643 §2.4 uses it as a sub-attribute name).
* Inside ``[...]`` (a value filter) paths are relative: a bare sub-attribute name, no URN and
  no dot, and no nested ``[...]``; the attribute before ``[`` has no sub-attribute.
* Strings are JSON strings (all escapes, surrogate pairs); raw control characters, unpaired
  surrogates and NUL (even escaped: ``\\u0000``, which a directory reads as the end of the
  value, so ``"alice\\u0000x"`` would match ``alice``) are errors.  Numbers are JSON numbers:
  ``int`` without fraction or exponent, otherwise a finite ``float``.
* Entra ID quirk: ``emails[type eq "work"].value eq "x"`` (not in the ABNF) is read as
  ``emails[type eq "work" and value eq "x"]``.

Limits keep hostile input cheap: ``max_length`` characters, ``max_depth`` nested parentheses
or brackets and ``max_terms`` comparisons; the AST is then at most about
``max_terms + max_depth`` levels deep, so recursive consumers stay far from Python's limit.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from contextlib import contextmanager
from string import ascii_letters, digits
from typing import NoReturn

from bridge.errors import InvalidFilter
from bridge.scim._syntax import Kind, Problem, Token, check_length, report, show, tokenize
from bridge.scim.filter import (
    COMPARE_OPS,
    And,
    AttrPath,
    Compare,
    Filter,
    Not,
    Or,
    Present,
    Value,
    ValuePath,
)

__all__ = ["FilterParser", "FilterSyntaxError", "attr_path_at", "parse"]


class FilterSyntaxError(InvalidFilter):
    """A filter that does not parse; ``column`` is 1-based into ``text``.  The SCIM ``detail``
    is the message, the text (a window of it, if long) and a caret under the column."""

    def __init__(self, text: str, column: int, reason: str):
        super().__init__(report(text, column, reason))
        self.text = text
        self.column = column
        self.reason = reason


#: ``attr[.sub] eq "plain string"``, the lookup IdPs send all day (``userName eq "bjensen"``):
#: read without tokenizing.  Anything else - escapes, control characters, surrogates, other
#: spacing or operators - goes through the parser; both give the same AST (a property test).
_PLAIN_EQ = re.compile(
    r"([A-Za-z][A-Za-z0-9_-]*)(?:\.([A-Za-z][A-Za-z0-9_-]*))? [eE][qQ] "
    r'"([^"\\\x00-\x1f\ud800-\udfff]*)"'
)


def parse(
    text: str, *, max_length: int = 4096, max_depth: int = 32, max_terms: int = 128
) -> Filter:
    """Parse a ``filter`` query parameter (RFC 7644 §3.4.2.2); raise FilterSyntaxError."""
    plain = _PLAIN_EQ.fullmatch(text) if len(text) <= max_length else None
    if plain is not None and max_terms >= 1:
        return Compare(AttrPath(None, plain[1], plain[2]), "eq", plain[3])
    try:
        check_length(text, max_length, "filter")
        return FilterParser(text, "filter", max_depth=max_depth, max_terms=max_terms).whole()
    except Problem as problem:
        raise FilterSyntaxError(text, problem.pos + 1, problem.message()) from None
    except RecursionError:  # only reachable with a max_depth far above the default
        raise FilterSyntaxError(text, 1, "filter nested too deeply at column 1") from None


# --- attribute paths ---------------------------------------------------------------------

_NAME_START = frozenset(ascii_letters)
_NAME_CHARS = frozenset(ascii_letters + digits + "-_")
_SCHEME_CHARS = frozenset(ascii_letters + digits + "+-.")
_URI_CHARS = frozenset(ascii_letters + digits + "-._~%!$&'*+,;=@/")
_NAME_RULE = "attribute names are a letter then letters, digits, '-' or '_'"


def attr_path_at(word: str, pos: int, *, relative: bool = False) -> AttrPath:
    """Read ``word`` (found at offset ``pos``) as an ``attrPath``; ``relative`` paths (inside a
    value filter) are a bare sub-attribute name."""
    schema, colon, rest = word.rpartition(":")
    if colon:
        check_schema_uri(schema, pos, word)
    base = pos + len(schema) + len(colon)
    attr, dot, sub = rest.partition(".")
    check_name(attr, base, word, "attribute name")
    if dot:
        check_name(sub, base + len(attr) + 1, word, "sub-attribute name")
    if relative and (colon or dot):
        why = "inside [...] name a sub-attribute alone, e.g. type"
        raise Problem(pos, f"unexpected path {show(word)}", why)
    return AttrPath(schema or None, attr, sub if dot else None)


def check_name(name: str, pos: int, word: str, kind: str) -> None:
    """Check ``ATTRNAME = ALPHA *(nameChar)`` (or ``$ref``) for ``name``, found at offset ``pos``
    inside ``word``; ``kind`` names it in the error."""
    if name == "$ref":
        return
    if not name or name[0] == ".":
        raise Problem(pos, f"missing {kind} in {show(word)}", _NAME_RULE)
    bad = 0 if name[0] not in _NAME_START else _first_outside(name, _NAME_CHARS)
    if bad is None:
        return
    why = "only one sub-attribute level is allowed" if name[bad] == "." else _NAME_RULE
    raise Problem(pos + bad, f"unexpected {name[bad]!r} in {show(word)}", why)


def _first_outside(text: str, allowed: frozenset[str]) -> int | None:
    return next((i for i, char in enumerate(text) if char not in allowed), None)


def check_schema_uri(schema: str, pos: int, word: str) -> None:
    """Check the URI before an attribute name (RFC 3986 ``scheme ":" ...``, as SCIM schema URNs
    like ``urn:ietf:params:scim:schemas:core:2.0:User`` are); no empty ``:`` segments."""
    scheme, colon, rest = schema.partition(":")
    segments = rest.split(":") if colon else []
    well_formed = (
        scheme[:1] in _NAME_START
        and set(scheme) <= _SCHEME_CHARS
        and bool(segments)
        and all(segment and set(segment) <= _URI_CHARS for segment in segments)
    )
    if not well_formed:
        why = "expected a schema URN such as urn:ietf:params:scim:schemas:core:2.0:User"
        raise Problem(pos, f"invalid schema URI in {show(word)}", why)


# --- the parser --------------------------------------------------------------------------

_OPERATOR_HINT = "expected an operator (eq, ne, co, sw, ew, gt, ge, lt, le, pr)"
_VALUE_HINT = "expected a value: a JSON string in double quotes, a number, true, false or null"
_START_HINT = "expected an attribute path, '(' or 'not ('"
_LITERALS: dict[str, Value] = {"true": True, "false": False, "null": None}
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?P<frac>\.[0-9]+)?(?P<exp>[eE][+-]?[0-9]+)?")
_CLOSERS = {Kind.END: "end of {noun}", Kind.RPAREN: "')'", Kind.RBRACKET: "']'"}


class FilterParser:
    """Recursive descent over the tokens of one text (RFC 7644 §3.4.2.2).  Also drives the
    value filter of PATCH paths (:mod:`bridge.scim.path`); ``noun`` names the text in errors."""

    def __init__(self, text: str, noun: str, *, max_depth: int, max_terms: int):
        self.tokens = tokenize(text)
        self.index = 0
        self.noun = noun
        self.max_depth = max_depth
        self.max_terms = max_terms
        self.depth = 0
        self.terms = 0

    # token access

    def peek(self, ahead: int = 0) -> Token:
        return self.tokens[min(self.index + ahead, len(self.tokens) - 1)]

    def advance(self) -> Token:
        token = self.peek()
        self.index = min(self.index + 1, len(self.tokens) - 1)
        return token

    def fail(self, token: Token, why: str) -> NoReturn:
        found = f"end of {self.noun}" if token.kind is Kind.END else show(token.text)
        raise Problem(token.pos, f"unexpected {found}", why)

    @contextmanager
    def nested(self, opener: Token) -> Iterator[None]:
        self.depth += 1
        if self.depth > self.max_depth:
            why = f"at most {self.max_depth} levels of parentheses and brackets are allowed"
            raise Problem(opener.pos, f"{opener.text!r} nested too deeply", why)
        yield
        self.depth -= 1

    # grammar

    def whole(self) -> Filter:
        """A complete filter: FILTER then end of text."""
        if self.peek().kind is Kind.END:
            raise Problem(0, f"empty {self.noun}", _START_HINT)
        result = self.disjunction(relative=False)
        self.close(Kind.END, None)
        return result

    def disjunction(self, *, relative: bool) -> Filter:
        """``logExp`` with ``or``: the loosest level; left-associative."""
        result = self.conjunction(relative=relative)
        while self.at_keyword("or"):
            self.advance()
            result = Or(result, self.conjunction(relative=relative))
        return result

    def conjunction(self, *, relative: bool) -> Filter:
        result = self.unary(relative=relative)
        while self.at_keyword("and"):
            self.advance()
            result = And(result, self.unary(relative=relative))
        return result

    def unary(self, *, relative: bool) -> Filter:
        token = self.peek()
        match token.kind:
            case Kind.LPAREN:
                return self.group(relative=relative)
            case Kind.WORD if token.text.lower() == "not" and self.peek(1).kind is Kind.LPAREN:
                self.advance()
                return Not(self.group(relative=relative))
            case Kind.WORD:
                return self.attr_exp(relative=relative)
        self.fail(token, _START_HINT)

    def group(self, *, relative: bool) -> Filter:
        opener = self.advance()
        with self.nested(opener):
            inner = self.disjunction(relative=relative)
        self.close(Kind.RPAREN, opener)
        return inner

    def value_filter(self) -> Filter:
        """``"[" valFilter "]"``, the ``[`` being the next token."""
        opener = self.advance()
        with self.nested(opener):
            inner = self.disjunction(relative=True)
        self.close(Kind.RBRACKET, opener)
        return inner

    def close(self, closer: Kind, opener: Token | None) -> None:
        """Consume ``closer`` after a complete expression, or explain what went wrong."""
        token = self.peek()
        if token.kind is closer:
            self.advance()
            return
        if token.kind is Kind.END and opener is not None:
            raise Problem(opener.pos, f"unclosed {opener.text!r}", f"expected {closer.value!r}")
        if self.peek(-1).text.lower() == "pr" and _is_value(token):
            self.fail(token, "'pr' takes no value")
        self.fail(token, "expected 'and', 'or' or " + _CLOSERS[closer].format(noun=self.noun))

    def attr_exp(self, *, relative: bool) -> Filter:
        token = self.advance()
        path = attr_path_at(token.text, token.pos, relative=relative)
        if self.peek().kind is not Kind.LBRACKET:
            return self.comparison(path, token)
        if relative:
            why = "a value filter cannot contain another '[...]'"
            raise Problem(self.peek().pos, "nested value filter", why)
        return self.value_path(path, token)

    def value_path(self, path: AttrPath, token: Token) -> Filter:
        if path.sub is not None:
            why = 'a value filter follows a multi-valued attribute, e.g. emails[type eq "work"]'
            raise Problem(self.peek().pos, f"'[' after sub-attribute path {show(token.text)}", why)
        inner = self.value_filter()
        after = self.peek()
        if after.kind is Kind.WORD and after.text.startswith("."):
            # Entra ID quirk: it sends `emails[type eq "work"].value eq "x"`, which the ABNF does
            # not allow (a valuePath is complete at "]").  Read it as the filter it means:
            # emails[type eq "work" and value eq "x"].
            self.advance()
            check_name(after.text[1:], after.pos + 1, after.text, "sub-attribute name")
            inner = And(inner, self.comparison(AttrPath(None, after.text[1:]), after))
        return ValuePath(path, inner)

    def comparison(self, path: AttrPath, path_token: Token) -> Filter:
        """The operator and value after an attribute path (``attrExp``)."""
        self.count(path_token)
        token = self.peek()
        op = token.text.lower() if token.kind is Kind.WORD else ""
        if op == "pr":
            self.advance()
            return Present(path)
        if op in COMPARE_OPS:
            self.advance()
            return Compare(path, op, self.value())
        hint = " ('not' must be followed by '(')" if path_token.text.lower() == "not" else ""
        self.fail(token, _OPERATOR_HINT + hint)

    def value(self) -> Value:
        """``compValue``: a JSON string, number, true, false or null (case-insensitive)."""
        token = self.peek()
        if token.kind is Kind.STRING:
            _check_no_nul(token)
            self.advance()
            return token.value
        if token.kind is Kind.WORD and _is_value(token):
            self.advance()
            return _literal(token)
        self.fail(token, _VALUE_HINT)

    def count(self, token: Token) -> None:
        self.terms += 1
        if self.terms > self.max_terms:
            why = f"a {self.noun} may hold at most {self.max_terms} comparisons"
            raise Problem(token.pos, "too many comparisons", why)

    def at_keyword(self, keyword: str) -> bool:
        token = self.peek()
        return token.kind is Kind.WORD and token.text.lower() == keyword


def _check_no_nul(token: Token) -> None:
    """Refuse NUL (``\\u0000``) in a string value: directories compare C strings, so Samba / AD
    read ``"alice\\u0000x"`` as ``alice`` and the filter would match another entry (a filter
    must never widen).  Nothing the bridge stores can hold NUL either (it refuses it on write)."""
    if "\x00" not in token.value:
        return
    at = token.text.lower().find("\\u0000")
    raise Problem(
        token.pos + max(at, 0),
        "NUL (\\u0000) in a string value",
        "a filter value must not contain NUL: directories compare only up to it",
    )


def _is_value(token: Token) -> bool:
    if token.kind is Kind.STRING:
        return True
    return token.kind is Kind.WORD and (
        token.text.lower() in _LITERALS or _NUMBER.fullmatch(token.text) is not None
    )


def _literal(token: Token) -> Value:
    """A bare JSON literal (RFC 7159 §3, §6): true, false, null or a number."""
    keyword = token.text.lower()
    if keyword in _LITERALS:
        return _LITERALS[keyword]
    match = _NUMBER.fullmatch(token.text)
    assert match is not None  # _is_value said so
    if match["frac"] is None and match["exp"] is None:
        return _integer(token)
    number = float(token.text)
    if not math.isfinite(number):
        raise Problem(token.pos, f"number {show(token.text)} out of range", "use a finite number")
    return number


def _integer(token: Token) -> int:
    try:
        return int(token.text)
    except ValueError:  # more digits than sys.get_int_max_str_digits()
        raise Problem(token.pos, f"number {show(token.text)} too long", "too many digits") from None
