"""Issue 16 item 7: control characters in logged values are escaped, in the text and the JSON
format, so a request cannot forge a log line.  Embedded directory and slapd with both clients."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from urllib.parse import quote

import pytest

from bridge.observability.logs import JsonFormatter, TextFormatter, clean
from tests.conftest import Backend, make_client
from tests.helpers import SCIM


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    caplog.set_level(logging.DEBUG, logger="bridge")
    yield caplog


# ---------------------------------------------------------------------------------- 3. logs
FORGED = "x\n2026-12-07 04:00:00,000 INFO bridge.audit delete User 42 by token 'okta'\r\u2028\x85"


def _captured(fmt: logging.Formatter) -> tuple[io.StringIO, logging.Handler]:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(fmt)
    logging.getLogger("bridge").addHandler(handler)
    return out, handler


@pytest.mark.parametrize("fmt", [TextFormatter, JsonFormatter])
def test_a_path_cannot_forge_a_log_line(
    backend: Backend, logs: pytest.LogCaptureFixture, fmt: type[logging.Formatter]
) -> None:
    client = make_client(backend)
    out, handler = _captured(fmt())
    try:
        where = f"{SCIM}/Users/{quote(FORGED, safe='')}"  # %0a etc.: the server decodes them
        r = client.delete(where, headers={"Authorization": ""})
        assert r.status_code == 401
        r = client.delete(where)
        assert r.status_code == 404
    finally:
        logging.getLogger("bridge").removeHandler(handler)
    lines = out.getvalue().split("\n")
    assert lines[-1] == ""
    lines = lines[:-1]
    loggers, messages = [], []
    for line in lines:  # each record one line, no separators of any kind left in it
        assert not any(c in line for c in "\r\x85\u2028\u2029"), line
        if fmt is JsonFormatter:
            loggers.append(json.loads(line)["logger"])
            messages.append(json.loads(line)["message"])
        else:
            assert line[:4].isdigit() and line[4] == "-", line
            loggers.append(line.split(" ")[3])
            messages.append(line)
    text = "\n".join(messages)
    assert "\\x0a2026-12-07 04:00:00,000 INFO bridge.audit delete" in text
    assert "\\x0d\\u2028\\x85" in text
    # the failed authentication's warning and audit record, then the delete's audit record
    assert loggers.count("bridge.audit") == 2 and "bridge.http" in loggers


def test_clean_escapes_every_control_character() -> None:
    controls = [chr(c) for c in (*range(0x20), *range(0x7F, 0xA0))]
    controls += ["\u2028", "\u2029", "\u200b", "\u202e", "\u2066", "\ufeff"]
    for c in controls:
        assert clean(f"a{c}b") != f"a{c}b" and c not in clean(f"a{c}b")
    assert clean("plain ünïcode, \\ and cn=a\\,b") == "plain ünïcode, \\ and cn=a\\,b"


@pytest.mark.parametrize("fmt", [TextFormatter, JsonFormatter])
def test_formatters_escape_messages_extras_and_tracebacks(fmt: type[logging.Formatter]) -> None:
    try:
        raise ValueError("boom\nFAKE LINE")
    except ValueError:
        import sys

        exc_info = sys.exc_info()
    record = logging.LogRecord("bridge.http", logging.WARNING, "f", 1, "id %s", ("a\nb",), exc_info)
    record.resource_id = "c\u2028d"
    record.ops = [{"dn": "uid=e\x7ff"}]
    line = fmt().format(record)
    if fmt is JsonFormatter:
        assert "\n" not in line
        data = json.loads(line)
        assert data["message"] == "id a\\x0ab"
        assert data["resource_id"] == "c\\u2028d" and data["ops"] == [{"dn": "uid=e\\x7ff"}]
        assert "boom\\x0aFAKE LINE" in data["exception"]
    else:
        first, *rest = line.split("\n")
        assert first.endswith("id a\\x0ab")
        assert rest and all(x.startswith("    ") for x in rest)  # the traceback, indented
        assert not any(x.startswith("FAKE") for x in rest)
