"""Okta, Entra ID (legacy and ``aadOptscim062020``), OneLogin and JumpCloud, as they send it.

Each flow in tests/idp/flows/ is the whole lifecycle one IdP drives — test connection, lookup
before create, create, lookup, update, group push, deactivate, reactivate, delete — with the
request bodies and query strings of its public documentation (the source is named on every
step).  It runs with the shipped mappings, unchanged, on every backend of tests/idp/conftest.py,
and its ``verify`` steps read what landed with an independent LDAP search.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.idp.conftest import Target
from tests.idp.runner import flow_files, load_flow, run_flow


@pytest.mark.parametrize("path", flow_files(), ids=lambda p: p.stem)
def test_idp_flow(path: Path, idp_target: Target) -> None:
    flow = load_flow(path)
    run_flow(flow, idp_target.client, idp_target.inspect)
