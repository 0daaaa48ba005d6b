"""The real CLI (a subprocess) on bad input: exactly one line on stderr, nothing on stdout, exit
status 2, never a traceback; and nothing is printed or bound before the settings, the mapping
and the client are validated (issue 20 "One-line errors", issue 16 items 1, 6 and 13)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

REAL = {"BRIDGE_LDAP_URL": "ldap://127.0.0.1:9", "BRIDGE_TOKEN": "a-token"}


def cli(*args: str, cwd: Path = ROOT, **env: str) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("BRIDGE_")}
    full.update(env, PYTHONPATH=str(ROOT) + os.pathsep + env.get("PYTHONPATH", ""))
    return subprocess.run(
        [sys.executable, "-m", "bridge.cli", *args],
        cwd=cwd,
        env=full,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


def one_line_error(proc: subprocess.CompletedProcess[str], *words: str) -> str:
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert proc.stdout == "", proc.stdout  # no banner, no token before the error
    (line,) = lines
    assert line.startswith("scim-ldap-bridge: ")
    for word in words:
        assert word in line, line
    return line


def test_translate_filter_with_a_missing_mapping() -> None:
    one_line_error(
        cli("translate-filter", "-m", "nope.yaml", 'userName eq "x"'),
        "nope.yaml: no such file",
        "example-mapping",
    )


def test_check_mapping_given_a_directory() -> None:
    one_line_error(cli("check-mapping", "mappings"), "is a directory", "mappings/openldap.yaml")


def test_serve_with_a_wrong_mapping_prints_nothing_first() -> None:
    line = one_line_error(cli("serve", BRIDGE_MAPPING="nope.yaml"), "BRIDGE_MAPPING nope.yaml")
    assert "no such file" in line


def test_serve_with_an_invalid_mapping_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 2\nresources: {}\nbogus: 1\n")
    one_line_error(cli("serve", "--mapping", str(bad)), f"configuration error in {bad}", "version")


def test_libldap_client_without_python_ldap(tmp_path: Path) -> None:
    # a python-ldap that fails to import, as when the extra is not installed
    (tmp_path / "ldap").mkdir()
    (tmp_path / "ldap" / "__init__.py").write_text("raise ImportError('No module named ldap')\n")
    proc = cli("serve", PYTHONPATH=str(tmp_path), BRIDGE_LDAP_CLIENT="libldap", **REAL)
    one_line_error(proc, "BRIDGE_LDAP_CLIENT", "scim-ldap-bridge[libldap]", ".[libldap]")
    proc = cli(
        "check-mapping",
        "mappings/openldap.yaml",
        "--connect",
        PYTHONPATH=str(tmp_path),
        BRIDGE_LDAP_CLIENT="libldap",
        **REAL,
    )
    assert proc.returncode == 2 and len(proc.stderr.splitlines()) == 1, proc.stderr


def test_unknown_log_level() -> None:
    one_line_error(
        cli("serve", BRIDGE_LOG_LEVEL="verbose"), "BRIDGE_LOG_LEVEL", "'verbose'", "DEBUG, INFO"
    )


def test_missing_tls_certificate() -> None:
    one_line_error(
        cli("serve", BRIDGE_TLS_CERT="/nonexistent", BRIDGE_TLS_KEY="/nonexistent"),
        "BRIDGE_TLS_CERT: cannot read /nonexistent",
    )


def test_base_path_slash_is_refused() -> None:
    one_line_error(cli("serve", BRIDGE_BASE_PATH="/"), "BRIDGE_BASE_PATH", "not allowed")


@pytest.mark.parametrize("value", ["y", "t", "readonly", "2", "enabled"])
def test_unknown_boolean_is_refused(value: str) -> None:
    one_line_error(
        cli("serve", BRIDGE_TOKEN_OKTA="s3cret", BRIDGE_TOKEN_OKTA_READONLY=value),
        "BRIDGE_TOKEN_OKTA_READONLY",
        repr(value),
        "true/1/yes/on",
    )


def test_two_tokens_with_one_secret() -> None:
    line = one_line_error(
        cli("serve", BRIDGE_TOKEN_OKTA="same-secret", BRIDGE_TOKEN_ENTRA="same-secret"),
        "same secret",
    )
    assert "same-secret" not in line  # the secret itself is never printed


def test_real_directory_without_a_token_refuses_to_start() -> None:
    line = one_line_error(
        cli("serve", BRIDGE_LDAP_URL="ldap://127.0.0.1:9"), "no token", "BRIDGE_TOKEN"
    )
    assert "bearer token" not in line


def test_several_workers_need_the_cursor_secret() -> None:
    one_line_error(
        cli("serve", "--workers", "2", **REAL), "--workers 2 needs BRIDGE_CURSOR_SECRET", "replica"
    )


def test_tls_hostname_wildcard_is_refused() -> None:
    one_line_error(
        cli("serve", BRIDGE_LDAP_TLS_HOSTNAME="*", **REAL), "BRIDGE_LDAP_TLS_HOSTNAME", "'*'"
    )


def test_example_mapping_lists_the_choices() -> None:
    one_line_error(
        cli("example-mapping", "okta"),
        "choose one of: openldap, openldap-bare, openldap-posix, active-directory, 389ds, "
        "389ds-posix",
    )


def test_help_documents_the_exit_status() -> None:
    proc = cli("--help")
    assert proc.returncode == 0
    assert "2  usage or configuration error" in proc.stdout
    assert "1  the command ran and found a problem" in proc.stdout


def test_check_mapping_problems_exit_1(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 2\nresources: {}\n")
    proc = cli("check-mapping", str(bad))
    assert proc.returncode == 1 and "problem(s)" in proc.stdout
