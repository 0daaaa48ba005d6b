"""Settings read strictly (issue 16 item 6, issue 20): booleans, tokens, base path, log level,
TLS files; the packaged default mapping; and the banner of ``serve`` on the embedded demo."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bridge.errors import ConfigError
from bridge.settings import DEFAULT_MAPPING, Settings, example_mapping
from tests.conftest import ROOT

BOOLEANS = [
    "BRIDGE_LDAP_STARTTLS",
    "BRIDGE_LDAP_TLS_VERIFY",
    "BRIDGE_LDAP_COOPERATIVE",
    "BRIDGE_DRY_RUN",
    "BRIDGE_LOG_JSON",
    "BRIDGE_DEMO_DATA",
    "BRIDGE_TOKEN_X_READONLY",
]


def problems(env: dict[str, str]) -> str:
    with pytest.raises(ConfigError) as err:
        Settings.from_env(env)
    return str(err.value)


@pytest.mark.parametrize("name", BOOLEANS)
@pytest.mark.parametrize("value", ["y", "t", "readonly", "ja", "11", "truee"])
def test_every_boolean_setting_refuses_unknown_words(name: str, value: str) -> None:
    text = problems({name: value, "BRIDGE_TOKEN_X": "s"})
    assert name in text and repr(value) in text and "false/0/no/off" in text


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("true", True),
        ("TRUE", True),
        ("1", True),
        ("Yes", True),
        ("on", True),
        ("false", False),
        ("0", False),
        ("NO", False),
        ("Off", False),
        (" true ", True),
        ("", False),
    ],
)
def test_the_eight_boolean_words_in_any_case(value: str, expected: bool) -> None:
    settings = Settings.from_env({"BRIDGE_TOKEN_X": "s", "BRIDGE_TOKEN_X_READONLY": value})
    (token,) = settings.tokens
    assert token.read_only is expected
    assert Settings.from_env({"BRIDGE_DRY_RUN": value}).dry_run is expected


def test_token_file_variant_keeps_its_readonly_flag(tmp_path: Path) -> None:
    secret = tmp_path / "okta"
    secret.write_text("okta-secret\n")
    settings = Settings.from_env(
        {"BRIDGE_TOKEN_OKTA_FILE": str(secret), "BRIDGE_TOKEN_OKTA_READONLY": "yes"}
    )
    (token,) = settings.tokens
    assert (token.name, token.secret, token.read_only) == ("okta", "okta-secret", True)
    assert problems({"BRIDGE_TOKEN_OKTA_FILE": str(secret), "BRIDGE_TOKEN_OKTA_READONLY": "r"})


def test_two_tokens_with_one_secret_are_refused(tmp_path: Path) -> None:
    (tmp_path / "s").write_text("shared")
    text = problems({"BRIDGE_TOKEN": "shared", "BRIDGE_TOKEN_AUDIT_FILE": str(tmp_path / "s")})
    assert "'default' and 'audit' have the same secret" in text and "shared" not in text
    ok = Settings.from_env({"BRIDGE_TOKEN": "one", "BRIDGE_TOKEN_AUDIT": "two"})
    assert [t.name for t in ok.tokens] == ["default", "audit"]


@pytest.mark.parametrize("value", ["/", "//", " / "])
def test_base_path_root_is_refused(value: str) -> None:
    assert "BRIDGE_BASE_PATH" in problems({"BRIDGE_BASE_PATH": value})
    assert Settings.from_env({"BRIDGE_BASE_PATH": "/scim/"}).base_path == "/scim"


def test_log_level_is_checked() -> None:
    assert "BRIDGE_LOG_LEVEL" in problems({"BRIDGE_LOG_LEVEL": "verbose"})
    assert Settings.from_env({"BRIDGE_LOG_LEVEL": "debug"}).log_level == "DEBUG"


def test_tls_files_must_be_readable(tmp_path: Path) -> None:
    cert = tmp_path / "c.pem"
    cert.write_text("x")
    text = problems(
        {"BRIDGE_TLS_CERT": str(cert), "BRIDGE_TLS_KEY": "/nonexistent/k.pem"}
        | {"BRIDGE_TLS_CLIENT_CA": "/nonexistent/ca.pem"}
    )
    assert "BRIDGE_TLS_KEY: cannot read /nonexistent/k.pem" in text
    assert "BRIDGE_TLS_CLIENT_CA: cannot read" in text and "BRIDGE_TLS_CERT:" not in text


@pytest.mark.parametrize("value", ["*", "*.example.org"])
def test_tls_hostname_wildcards_are_refused(value: str) -> None:
    assert "BRIDGE_LDAP_TLS_HOSTNAME" in problems({"BRIDGE_LDAP_TLS_HOSTNAME": value})
    named = Settings.from_env({"BRIDGE_LDAP_TLS_HOSTNAME": "ldap.example.org"})
    assert named.tls_hostname == "ldap.example.org"


def test_header_limits_have_defaults_and_floors() -> None:
    s = Settings()
    assert (s.max_header_bytes, s.max_headers, s.header_timeout) == (16384, 100, 10.0)
    assert "BRIDGE_MAX_HEADER_BYTES" in problems({"BRIDGE_MAX_HEADER_BYTES": "10"})
    assert "BRIDGE_HEADER_TIMEOUT" in problems({"BRIDGE_HEADER_TIMEOUT": "0"})
    assert Settings.from_env({"BRIDGE_MAX_HEADERS": "50"}).max_headers == 50


def test_default_mapping_is_the_packaged_example_from_any_directory(tmp_path: Path) -> None:
    assert Path(DEFAULT_MAPPING).is_absolute() and Path(DEFAULT_MAPPING).is_file()
    assert Settings.from_env({}).mapping == DEFAULT_MAPPING
    script = "from bridge.settings import Settings; from bridge.mapping.load import load_mapping; "
    script += "print(load_mapping(Settings.from_env({}).mapping).dialect.name)"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("BRIDGE_MAPPING", None)
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert out.stdout.strip() == "openldap", out.stderr


@pytest.mark.parametrize(
    "name", ["openldap", "openldap-posix", "active-directory", "389ds", "389ds-posix"]
)
def test_packaged_mappings_are_the_edited_sources(name: str) -> None:
    # bridge/data/mappings/*.yaml link to mappings/: the packaged copy cannot drift
    assert example_mapping(name).read_bytes() == (ROOT / "mappings" / f"{name}.yaml").read_bytes()


def test_example_mapping_command_writes_a_loadable_file(tmp_path: Path) -> None:
    from bridge.mapping.load import load_mapping

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-m", "bridge.cli", "example-mapping", "active-directory"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    (tmp_path / "my.yaml").write_text(out.stdout)
    assert load_mapping(tmp_path / "my.yaml").dialect.name == "active-directory"


def _banner(extra: dict[str, str]) -> str:
    """The lines ``serve`` prints on the embedded directory, up to the token line."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("BRIDGE_")}
    env |= {"PYTHONPATH": str(ROOT), "BRIDGE_PORT": str(port), **extra}
    proc = subprocess.Popen(
        [sys.executable, "-m", "bridge.cli", "serve"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if line.startswith("directory:"):
                break
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    return "".join(lines)


def test_demo_banner_follows_demo_data() -> None:
    assert "(demo data;" in _banner({"BRIDGE_TOKEN": "t"})
    empty = _banner({"BRIDGE_TOKEN": "t", "BRIDGE_DEMO_DATA": "false"})
    assert "EMBEDDED in-memory directory (empty;" in empty and "demo data" not in empty
