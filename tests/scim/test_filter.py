"""SCIM filter parsing (RFC 7644 §3.4.2.2)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from bridge.errors import InvalidFilter
from bridge.scim.filter import (
    And,
    AttrPath,
    Compare,
    Filter,
    Not,
    Or,
    Present,
    Value,
    ValuePath,
    attr_paths,
    render,
    render_value,
)
from bridge.scim.filter_parser import FilterSyntaxError, parse
from tests.scim.strategies import depth, filters, typed

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
CORE_USER = "urn:ietf:params:scim:schemas:core:2.0:User"

# RFC 7644 §3.4.2.2, Figure 2 ("Example Filters"), every one; lines the RFC wraps are joined
# with a single space.
RFC_EXAMPLES = [
    'userName eq "bjensen"',
    'name.familyName co "O\'Malley"',
    'userName sw "J"',
    'urn:ietf:params:scim:schemas:core:2.0:User:userName sw "J"',
    "title pr",
    'meta.lastModified gt "2011-05-13T04:42:34Z"',
    'meta.lastModified ge "2011-05-13T04:42:34Z"',
    'meta.lastModified lt "2011-05-13T04:42:34Z"',
    'meta.lastModified le "2011-05-13T04:42:34Z"',
    'title pr and userType eq "Employee"',
    'title pr or userType eq "Intern"',
    'schemas eq "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"',
    'userType eq "Employee" and (emails co "example.com" or emails.value co "example.org")',
    'userType ne "Employee" and not (emails co "example.com" or emails.value co "example.org")',
    'userType eq "Employee" and (emails.type eq "work")',
    'userType eq "Employee" and emails[type eq "work" and value co "@example.com"]',
    'emails[type eq "work" and value co "@example.com"] or ims[type eq "xmpp" and value co "@foo.com"]',
]

REAL_IDP_FILTERS = [
    'userName eq "bjensen@example.com"',
    'externalId eq "00ub0oNGTSWTBKOLGLNR"',
    'emails[type eq "work"].value eq "x"',
    'displayName eq "Group Name"',
    'members[value eq "abc"]',
    'meta.lastModified gt "2011-05-13T04:42:34Z"',
]


def path(attr: str, sub: str | None = None, schema: str | None = None) -> AttrPath:
    return AttrPath(schema, attr, sub)


def eq(attr: str, value: Value, sub: str | None = None) -> Compare:
    return Compare(path(attr, sub), "eq", value)


def pr(attr: str) -> Present:
    return Present(path(attr))


A, B, C, D = pr("a"), pr("b"), pr("c"), pr("d")


@pytest.mark.parametrize("text", RFC_EXAMPLES + REAL_IDP_FILTERS)
def test_examples_parse_and_round_trip(text: str) -> None:
    f = parse(text)
    assert parse(render(f)) == f


EXPECTED: list[tuple[str, Filter]] = [
    # Figure 2, the ones with structure
    ('name.familyName co "O\'Malley"', Compare(path("name", "familyName"), "co", "O'Malley")),
    (f'{CORE_USER}:userName sw "J"', Compare(path("userName", schema=CORE_USER), "sw", "J")),
    ('title pr and userType eq "Employee"', And(pr("title"), eq("userType", "Employee"))),
    ('title pr or userType eq "Intern"', Or(pr("title"), eq("userType", "Intern"))),
    (f'schemas eq "{ENTERPRISE}"', eq("schemas", ENTERPRISE)),
    (
        'userType ne "Employee" and not (emails co "example.com" or emails.value co "example.org")',
        And(
            Compare(path("userType"), "ne", "Employee"),
            Not(
                Or(
                    Compare(path("emails"), "co", "example.com"),
                    Compare(path("emails", "value"), "co", "example.org"),
                )
            ),
        ),
    ),
    (
        'userType eq "Employee" and (emails.type eq "work")',
        And(eq("userType", "Employee"), eq("emails", "work", sub="type")),
    ),
    (
        'userType eq "Employee" and emails[type eq "work" and value co "@example.com"]',
        And(
            eq("userType", "Employee"),
            ValuePath(
                path("emails"),
                And(eq("type", "work"), Compare(path("value"), "co", "@example.com")),
            ),
        ),
    ),
    (
        'emails[type eq "work" and value co "@example.com"] or '
        'ims[type eq "xmpp" and value co "@foo.com"]',
        Or(
            ValuePath(
                path("emails"),
                And(eq("type", "work"), Compare(path("value"), "co", "@example.com")),
            ),
            ValuePath(
                path("ims"), And(eq("type", "xmpp"), Compare(path("value"), "co", "@foo.com"))
            ),
        ),
    ),
    # precedence: not > and > or; and/or left-associative; parentheses leave no node
    ("a pr or b pr and c pr", Or(A, And(B, C))),
    ("a pr and b pr or c pr", Or(And(A, B), C)),
    ("a pr and b pr and c pr", And(And(A, B), C)),
    ("a pr or b pr or c pr", Or(Or(A, B), C)),
    ("a pr and (b pr or c pr)", And(A, Or(B, C))),
    ("(a pr or b pr) and c pr", And(Or(A, B), C)),
    ("a pr or (b pr or c pr)", Or(A, Or(B, C))),
    ("not (a pr) and b pr", And(Not(A), B)),
    ("a pr or not (b pr) and c pr or d pr", Or(Or(A, And(Not(B), C)), D)),
    ("((a pr))", A),
    ("not(a pr)", Not(A)),
    ("NOT ( a pr )", Not(A)),
    ("not (not (a pr))", Not(Not(A))),
    ("a pr AND b pr Or c pr", Or(And(A, B), C)),
    # case-insensitive operators and literals; attribute names kept as written
    ('userName EQ "x"', eq("userName", "x")),
    ('UserName Eq "x"', eq("UserName", "x")),
    ("title PR", pr("title")),
    ("active eq True", eq("active", True)),
    ("active eq FALSE", eq("active", False)),
    ("nickName eq Null", eq("nickName", None)),
    # whitespace
    ('  userName \t\t eq   "x"  ', eq("userName", "x")),
    ('userName\neq\r\n"x"', eq("userName", "x")),
    ('(userName eq"x")and(title pr)', And(eq("userName", "x"), pr("title"))),
    # URN-qualified paths: the URN is everything up to the last colon
    (f"{ENTERPRISE}:manager.value pr", Present(path("manager", "value", ENTERPRISE))),
    (
        f'{ENTERPRISE}:employeeNumber eq "7"',
        Compare(path("employeeNumber", None, ENTERPRISE), "eq", "7"),
    ),
    (
        f'{CORE_USER}:name.familyName eq "J"',
        Compare(path("name", "familyName", CORE_USER), "eq", "J"),
    ),
    (
        f'{ENTERPRISE}:manager[value eq "1"]',
        ValuePath(path("manager", None, ENTERPRISE), eq("value", "1")),
    ),
    # sub-attributes, $ref, names that look like keywords
    ("meta.lastModified pr", Present(path("meta", "lastModified"))),
    ('members[$ref eq "u/1"]', ValuePath(path("members"), eq("$ref", "u/1"))),
    ("manager.$ref pr", Present(path("manager", "$ref"))),
    ("not pr", pr("not")),
    ("and eq 1 or or pr", Or(eq("and", 1), pr("or"))),
    ("x-y_z9 pr", pr("x-y_z9")),
    # value paths with logical filters inside
    (
        'members[value eq "x" or display sw "a"]',
        ValuePath(path("members"), Or(eq("value", "x"), Compare(path("display"), "sw", "a"))),
    ),
    (
        'emails[not (type eq "work") and (primary eq true)]',
        ValuePath(path("emails"), And(Not(eq("type", "work")), eq("primary", True))),
    ),
    # JSON strings: every escape, \u, surrogate pairs, raw non-ASCII
    (
        r'x eq "q\"b\\s\/b\bf\fn\nr\rt\t\u00e9\u20AC\ud83d\ude00"',
        eq("x", 'q"b\\s/b\bf\fn\nr\rt\t\u00e9\u20ac\U0001f600'),
    ),
    ('x eq "\u00e9\U0001f600 ] ) ( ["', eq("x", "\u00e9\U0001f600 ] ) ( [")),
    ('x eq ""', eq("x", "")),
    # JSON numbers
    ("x eq 0", eq("x", 0)),
    ("x gt -5", Compare(path("x"), "gt", -5)),
    ("x lt 1.5", Compare(path("x"), "lt", 1.5)),
    ("x le -1.5e3", Compare(path("x"), "le", -1500.0)),
    ("x ge 1E+2", Compare(path("x"), "ge", 100.0)),
    ("x ne 2e-3", Compare(path("x"), "ne", 0.002)),
    ("x eq 123456789012345678901234567890", eq("x", 123456789012345678901234567890)),
]


@pytest.mark.parametrize(("text", "expected"), EXPECTED)
def test_expected_ast(text: str, expected: Filter) -> None:
    f = parse(text)
    assert typed(f) == typed(expected)
    assert typed(parse(render(f))) == typed(f)


def test_value_types_are_kept() -> None:
    names = []
    for text in ("x eq 1", "x eq 1.0", "x eq true", 'x eq "1"', "x eq null", "x eq 1e0"):
        f = parse(text)
        assert isinstance(f, Compare)
        names.append(type(f.value).__name__)
    assert names == ["int", "float", "bool", "str", "NoneType", "float"]


def test_entra_value_path_sugar() -> None:
    """Entra sends `emails[type eq "work"].value eq "x"`; it means one email matching both."""
    expected = ValuePath(path("emails"), And(eq("type", "work"), eq("value", "x")))
    f = parse('emails[type eq "work"].value eq "x"')
    assert f == expected
    assert render(f) == 'emails[type eq "work" and value eq "x"]'
    assert parse('emails[type eq "work"].value pr') == ValuePath(
        path("emails"), And(eq("type", "work"), pr("value"))
    )
    assert parse('emails[type eq "work" or primary eq true].value sw "a" and active eq true') == (
        And(
            ValuePath(
                path("emails"),
                And(
                    Or(eq("type", "work"), eq("primary", True)),
                    Compare(path("value"), "sw", "a"),
                ),
            ),
            eq("active", True),
        )
    )


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ('userName  Eq "x"', 'userName eq "x"'),
        ("NOT(a pr)", "not (a pr)"),
        ("(a pr or b pr) and c pr", "(a pr or b pr) and c pr"),
        ("a pr and (b pr and c pr)", "a pr and (b pr and c pr)"),
        ("((a pr) and (b pr)) or (c pr)", "a pr and b pr or c pr"),
        ("x eq TRUE", "x eq true"),
        ("x eq 1E2", "x eq 100.0"),
        (r'x eq "\u0041\/\u0001"', r'x eq "A/\u0001"'),
        (r'x eq "tab\u0009here"', r'x eq "tab\there"'),
    ],
)
def test_render_is_canonical(text: str, canonical: str) -> None:
    assert render(parse(text)) == canonical


def test_render_value_rejects_non_finite() -> None:
    with pytest.raises(ValueError):
        render_value(float("inf"))


def test_attr_paths() -> None:
    f = parse(
        f'userName eq "a" and not (emails[type eq "work" and value co "@x"]) '
        f'or {ENTERPRISE}:manager.value pr or meta.lastModified gt "2011"'
    )
    assert list(attr_paths(f)) == [
        path("userName"),
        path("emails", "type"),
        path("emails", "value"),
        path("manager", "value", ENTERPRISE),
        path("meta", "lastModified"),
    ]
    assert list(attr_paths(parse(f'{ENTERPRISE}:manager[value eq "1"]'))) == [
        path("manager", "value", ENTERPRISE)
    ]


# --- errors ------------------------------------------------------------------------------

ERRORS = [
    # (text, column, words the message must contain)
    ("", 1, "empty filter"),
    ("   ", 1, "empty filter"),
    ('userName fooo "x"', 10, "unexpected 'fooo' at column 10: expected an operator"),
    ('userName regex "x"', 10, "expected an operator (eq, ne, co, sw, ew, gt, ge, lt, le, pr)"),
    ("userName eq", 12, "unexpected end of filter at column 12: expected a value"),
    ("userName eq bjensen", 13, "unexpected 'bjensen'"),
    ("userName eq 'bjensen'", 13, "JSON string in double quotes"),
    ('title pr "x"', 10, "'pr' takes no value"),
    ("title pr 1", 10, "'pr' takes no value"),
    ('a pr b eq "x"', 6, "expected 'and', 'or' or end of filter"),
    ("a pr and", 9, "unexpected end of filter"),
    ("a pr or or", 11, "unexpected end of filter"),
    ("and pr and", 11, "unexpected end of filter"),
    ("(a pr", 1, "unclosed '('"),
    ("((a pr)", 1, "unclosed '('"),
    ("a pr)", 5, "unexpected ')'"),
    ("()", 2, "unexpected ')'"),
    ("(a pr]", 6, "expected 'and', 'or' or ')'"),
    ("not title pr", 5, "'not' must be followed by '('"),
    ("not", 4, "expected an operator"),
    ("not ()", 6, "unexpected ')'"),
    ('emails[type eq "work"', 7, "unclosed '['"),
    ('emails[type eq "work")', 22, "expected 'and', 'or' or ']'"),
    ("emails[]", 8, "unexpected ']'"),
    ("emails[value[x eq 1]]", 13, "nested value filter"),
    ('emails[type.x eq "work"]', 8, "name a sub-attribute alone"),
    (f'emails[{CORE_USER}:type eq "work"]', 8, "name a sub-attribute alone"),
    ('name.givenName[x eq "y"]', 15, "'[' after sub-attribute path"),
    ('emails[type eq "work"].value', 29, "expected an operator"),
    ('emails[type eq "work"].', 24, "missing sub-attribute name"),
    ('emails[type eq "work"].a.b eq 1', 25, "only one sub-attribute level"),
    ("name.given.x pr", 11, "only one sub-attribute level"),
    ("name. pr", 6, "missing sub-attribute name"),
    (".name pr", 1, "missing attribute name"),
    ("1abc eq 1", 1, "unexpected '1' in '1abc'"),
    ("user@name eq 1", 5, "unexpected '@'"),
    ("$foo pr", 1, "unexpected '$'"),
    ("urn:ietf:params:scim:schemas:core:2.0:User: pr", 44, "missing attribute name"),
    ("foo:bar eq 1", 1, "invalid schema URI"),
    ("urn::x:bar eq 1", 1, "invalid schema URI"),
    (":bar eq 1", 1, "invalid schema URI"),
    ('x eq "abc', 6, "unterminated string"),
    ('x eq "a\\', 6, "unterminated string"),
    ('x eq "\\x"', 7, "invalid escape '\\\\x'"),
    ('x eq "\\u12"', 7, "four hex digits"),
    ('x eq "\\u12G4"', 7, "four hex digits"),
    ('x eq "\\ud800"', 7, "unpaired surrogate"),
    ('x eq "\\ud800\\u0041"', 7, "unpaired surrogate"),
    ('x eq "\\udc00"', 7, "unpaired surrogate"),
    ('x eq "a\u0001b"', 8, "control character U+0001"),
    ('x eq "a\nb"', 8, "control character U+000A"),
    ('x eq "\ud800"', 7, "unpaired surrogate"),
    ("x eq 01", 6, "expected a value"),
    ("x eq 1.", 6, "expected a value"),
    ("x eq .5", 6, "expected a value"),
    ("x eq +1", 6, "expected a value"),
    ("x eq 1e", 6, "expected a value"),
    ("x eq 1e999", 6, "out of range"),
    ("x eq -1e999", 6, "out of range"),
    ("x eq truth", 6, "expected a value"),
    ("x eq (1)", 6, "expected a value"),
]


@pytest.mark.parametrize(("text", "column", "message"), ERRORS)
def test_errors(text: str, column: int, message: str) -> None:
    with pytest.raises(FilterSyntaxError) as caught:
        parse(text)
    error = caught.value
    assert error.column == column
    assert error.text == text
    assert message in error.reason
    assert f"at column {column}" in error.reason


def test_error_detail_has_message_text_and_caret() -> None:
    with pytest.raises(InvalidFilter) as caught:
        parse('userName fooo "x"')
    error = caught.value
    assert error.detail == (
        "unexpected 'fooo' at column 10: expected an operator "
        "(eq, ne, co, sw, ew, gt, ge, lt, le, pr)\n"
        '  userName fooo "x"\n'
        "           ^"
    )
    assert error.status == 400
    assert error.scim_type == "invalidFilter"
    assert error.body()["scimType"] == "invalidFilter"


def test_error_excerpt_of_long_text_is_a_window_with_aligned_caret() -> None:
    text = " or ".join([f'userName eq "user{i}"' for i in range(20)]) + " or x fooo 1"
    with pytest.raises(FilterSyntaxError) as caught:
        parse(text)
    _, shown, caret = caught.value.detail.split("\n")
    assert shown.startswith("  ...") and len(shown) < 90
    assert shown[caret.index("^") :].startswith("fooo 1")


def test_error_excerpt_blanks_control_characters() -> None:
    with pytest.raises(FilterSyntaxError) as caught:
        parse("\ta\tpr\tb")
    _, shown, caret = caught.value.detail.split("\n")
    assert "\t" not in shown
    assert shown[caret.index("^")] == "b"


# --- limits ------------------------------------------------------------------------------


def test_length_limit() -> None:
    assert parse("a pr", max_length=4) == A
    with pytest.raises(FilterSyntaxError, match="too long") as caught:
        parse("a pr ", max_length=4)
    assert caught.value.column == 5
    with pytest.raises(FilterSyntaxError, match="limit is 4096"):
        parse('userName eq "' + "x" * 5000 + '"')


def test_depth_limit() -> None:
    assert parse("(" * 32 + "a pr" + ")" * 32) == A
    with pytest.raises(FilterSyntaxError, match="nested too deeply") as caught:
        parse("(" * 33 + "a pr" + ")" * 33)
    assert caught.value.column == 33
    assert parse("not (" * 3 + "a pr" + ")" * 3, max_depth=3) == Not(Not(Not(A)))
    with pytest.raises(FilterSyntaxError, match="nested too deeply"):
        parse("not (" * 4 + "a pr" + ")" * 4, max_depth=3)
    with pytest.raises(FilterSyntaxError, match="nested too deeply"):
        parse('(emails[type eq "x"])', max_depth=1)


@pytest.mark.parametrize("max_length", [4096, 20_000, 100_000])
def test_ten_kilobytes_of_parentheses_is_an_invalid_filter(max_length: int) -> None:
    for text in ("(" * 10_000, "not (" * 2_000, "a[" * 5_000, "(" * 10_000 + "a pr" + ")" * 10_000):
        with pytest.raises(FilterSyntaxError):
            parse(text, max_length=max_length)


def test_runaway_depth_setting_still_gives_invalid_filter() -> None:
    text = "(" * 50_000 + "a pr" + ")" * 50_000
    with pytest.raises(FilterSyntaxError):
        parse(text, max_length=len(text), max_depth=len(text))


def test_term_limit() -> None:
    text = " or ".join(f'id eq "{i}"' for i in range(128))
    assert len(list(attr_paths(parse(text)))) == 128
    with pytest.raises(FilterSyntaxError, match="at most 128 comparisons"):
        parse(text + ' or id eq "x"')
    with pytest.raises(FilterSyntaxError, match="at most 1 comparisons"):
        parse('emails[type eq "work"].value eq "x"', max_terms=1)


def test_largest_filters_stay_far_from_the_recursion_limit() -> None:
    """A maximal AST (every term chained, every level nested) survives ==, hash, repr,
    render and attr_paths with hundreds of frames to spare for the caller's own recursion."""
    chain = " and ".join(["a pr"] * 127)
    text = "not (" * 31 + chain + " and emails[x pr]" + ")" * 31
    f = parse(text, max_length=10_000)

    def nested(frames: int) -> None:
        if frames:
            nested(frames - 1)
            return
        assert f == parse(text, max_length=10_000)
        hash(f)
        repr(f)
        assert parse(render(f), max_length=10_000) == f
        assert len(list(attr_paths(f))) == 128

    nested(250)


# --- properties --------------------------------------------------------------------------


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(filters())
def test_render_round_trips(f: Filter) -> None:
    assume(depth(f) <= 30)
    assert typed(parse(render(f))) == typed(f)


_FRAGMENTS = [
    *'ab.:$_-09 \t\n()[]"\\/uUeEnNoOtTrRpPqQdD+',
    " eq ",
    " and ",
    " or ",
    "not ",
    " pr",
    "true",
    "null",
    "urn:x:",
    '"x"',
    "\\u",
    "d83d",
    "\\ude00",
    "emails[",
    "].",
    "1e5",
]
FILTERISH = st.lists(st.sampled_from(_FRAGMENTS), max_size=40).map("".join)


@st.composite
def mutated(draw: st.DrawFn, base: st.SearchStrategy[str]) -> str:
    """A valid filter with a few random edits: the inputs most likely to find parser bugs."""
    text = draw(base)
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(text)))
        cut = draw(st.integers(0, 3))
        insert = draw(st.one_of(st.sampled_from(_FRAGMENTS), st.text(max_size=2)))
        text = text[:at] + insert + text[at + cut :]
    return text


FUZZ = st.one_of(
    st.text(max_size=120),
    FILTERISH,
    mutated(st.sampled_from(RFC_EXAMPLES + REAL_IDP_FILTERS)),
    mutated(filters().filter(lambda f: depth(f) <= 30).map(render)),
)


def _parse_is_total(text: str) -> None:
    """parse() either returns a filter that renders and re-parses to itself, or raises
    InvalidFilter (a FilterSyntaxError with a column inside the text) - nothing else."""
    try:
        f = parse(text)
    except InvalidFilter as error:
        assert isinstance(error, FilterSyntaxError)
        assert 1 <= error.column <= len(text) + 1
        return
    assert typed(parse(render(f))) == typed(f)


@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(FUZZ)
def test_fuzz_parse_only_raises_invalid_filter(text: str) -> None:
    _parse_is_total(text)


@pytest.mark.slow
@settings(max_examples=20_000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(FUZZ)
def test_fuzz_parse_only_raises_invalid_filter_heavy(text: str) -> None:
    _parse_is_total(text)


def test_no_ldap_or_http_imports() -> None:
    code = (
        "import sys, bridge.scim.filter, bridge.scim.path; "
        "bad = {'ldap3', 'starlette'} & {m.split('.')[0] for m in sys.modules}; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
