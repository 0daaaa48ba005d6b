"""The lexical layer shared by SCIM filters (RFC 7644 §3.4.2.2) and PATCH paths (§3.5.2).

A hand-written tokenizer: whitespace separates tokens and is otherwise insignificant;
``( ) [ ]`` are single-character tokens; ``"..."`` is a JSON string (RFC 7159 §7) decoded here;
every other run of characters is a *word* (an attribute path, a keyword, an operator or a bare
JSON literal) that the parser interprets by position.  Errors are :class:`Problem`, carrying a
0-based offset; the public modules turn them into their SCIM error with a column and a caret.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Kind(Enum):
    WORD = "word"
    STRING = "string"
    LPAREN = "("
    RPAREN = ")"
    LBRACKET = "["
    RBRACKET = "]"
    END = "end"


@dataclass(frozen=True)
class Token:
    kind: Kind
    pos: int  # 0-based offset of the first character
    text: str  # the source text of the token ("" for END)
    value: str = ""  # the decoded contents of a STRING


class Problem(Exception):
    """A syntax error at ``pos`` (0-based): *what* was found and *why* it is wrong."""

    def __init__(self, pos: int, what: str, why: str):
        super().__init__(f"{what} at offset {pos}: {why}")
        self.pos = pos
        self.what = what
        self.why = why

    def message(self) -> str:
        return f"{self.what} at column {self.pos + 1}: {self.why}"


WHITESPACE = frozenset(" \t\r\n")
_PUNCTUATION = {"(": Kind.LPAREN, ")": Kind.RPAREN, "[": Kind.LBRACKET, "]": Kind.RBRACKET}
_DELIMITERS = WHITESPACE | frozenset(_PUNCTUATION) | {'"'}
_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
_HEX = frozenset("0123456789abcdefABCDEF")
_ESCAPE_HINT = 'JSON strings allow \\" \\\\ \\/ \\b \\f \\n \\r \\t and \\uXXXX'


def tokenize(text: str) -> list[Token]:
    """Split ``text`` into tokens, always ending with one END token."""
    tokens: list[Token] = []
    pos = _skip_whitespace(text, 0)
    while pos < len(text):
        token = _token_at(text, pos)
        tokens.append(token)
        pos = _skip_whitespace(text, pos + len(token.text))
    tokens.append(Token(Kind.END, len(text), ""))
    return tokens


def _skip_whitespace(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in WHITESPACE:
        pos += 1
    return pos


def _token_at(text: str, pos: int) -> Token:
    char = text[pos]
    if char in _PUNCTUATION:
        return Token(_PUNCTUATION[char], pos, char)
    if char == '"':
        return _string_at(text, pos)
    end = pos
    while end < len(text) and text[end] not in _DELIMITERS:
        end += 1
    return Token(Kind.WORD, pos, text[pos:end])


def _string_at(text: str, start: int) -> Token:
    """A JSON string (RFC 7159 §7) starting at the quote at ``start``."""
    out: list[str] = []
    pos = start + 1
    while pos < len(text):
        char = text[pos]
        if char == '"':
            return Token(Kind.STRING, start, text[start : pos + 1], "".join(out))
        if char == "\\":
            if pos + 1 == len(text):
                break
            decoded, pos = _escape_at(text, pos)
            out.append(decoded)
            continue
        _check_raw_char(char, pos)
        out.append(char)
        pos += 1
    raise Problem(start, "unterminated string", "a JSON string must end with '\"'")


def _check_raw_char(char: str, pos: int) -> None:
    code = ord(char)
    if code < 0x20:
        raise Problem(pos, f"control character U+{code:04X} in a string", "escape it, e.g. \\n")
    if 0xD800 <= code <= 0xDFFF:
        raise Problem(pos, f"unpaired surrogate U+{code:04X} in a string", "not valid Unicode")


def _escape_at(text: str, pos: int) -> tuple[str, int]:
    """Decode the escape sequence whose backslash is at ``pos``; return it and the next offset."""
    code = text[pos + 1 : pos + 2]
    if code in _ESCAPES:
        return _ESCAPES[code], pos + 2
    if code == "u":
        return _unicode_escape_at(text, pos)
    raise Problem(pos, f"invalid escape {text[pos : pos + 2]!r}", _ESCAPE_HINT)


def _unicode_escape_at(text: str, pos: int) -> tuple[str, int]:
    unit = _hex4(text, pos)
    if 0xDC00 <= unit <= 0xDFFF:
        raise Problem(pos, f"unpaired surrogate \\u{unit:04x}", "a low surrogate needs a high one")
    if not 0xD800 <= unit <= 0xDBFF:
        return chr(unit), pos + 6
    low = _hex4(text, pos + 6) if text.startswith("\\u", pos + 6) else -1
    if not 0xDC00 <= low <= 0xDFFF:
        raise Problem(pos, f"unpaired surrogate \\u{unit:04x}", "expected a \\uDC00-\\uDFFF next")
    return chr(0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00)), pos + 12


def _hex4(text: str, pos: int) -> int:
    digits = text[pos + 2 : pos + 6]
    if len(digits) != 4 or not set(digits) <= _HEX:
        raise Problem(pos, f"invalid escape {text[pos : pos + 6]!r}", "\\u takes four hex digits")
    return int(digits, 16)


def show(text: str, limit: int = 30) -> str:
    """``text`` quoted for an error message, shortened when long."""
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")


def check_length(text: str, limit: int, noun: str) -> None:
    if len(text) > limit:
        raise Problem(limit, f"{noun} too long ({len(text)} characters)", f"the limit is {limit}")


def report(text: str, column: int, reason: str, width: int = 72) -> str:
    """``reason``, then the text (a window of it, if long) and a caret under ``column``."""
    pos = column - 1
    start = max(0, min(pos - width // 2, len(text) - width))
    end = min(len(text), start + width)
    head = "..." if start > 0 else ""
    tail = "..." if end < len(text) else ""
    shown = "".join(_printable(char) for char in text[start:end])
    caret = " " * (len(head) + pos - start) + "^"
    return f"{reason}\n  {head}{shown}{tail}\n  {caret}"


def _printable(char: str) -> str:
    """One display cell per character, so the caret lines up (and no lone surrogates leak)."""
    if char in WHITESPACE:
        return " "
    return char if char.isprintable() else "?"
