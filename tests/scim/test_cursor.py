"""RFC 9865 cursors: stateless, signed, bound to their query."""

from __future__ import annotations

import pytest

from bridge.errors import ScimError
from bridge.scim.cursor import Cursors, derive_key, fingerprint


def test_round_trip_and_replicas_with_one_secret_agree() -> None:
    q = fingerprint("User", 'userName sw "a"', None, "ascending")
    one = Cursors(derive_key("shared-secret"))
    two = Cursors(derive_key("shared-secret"))  # another replica, same BRIDGE_CURSOR_SECRET
    token = one.encode(101, q)
    assert two.decode(token, q) == 101


@pytest.mark.parametrize(
    "token", ["", ".", "x.y", "ünï.cödé", "e30.AAAAAAAAAAAAAAAAAAAAAA", "e30" * 50]
)
def test_garbage_is_invalid_cursor(token: str) -> None:
    with pytest.raises(ScimError) as err:
        Cursors(derive_key("s")).decode(token, "q")
    assert err.value.status == 400 and err.value.scim_type == "invalidCursor"


def test_other_key_or_other_query_is_invalid() -> None:
    c = Cursors(derive_key("secret-a"))
    token = c.encode(5, "q1")
    with pytest.raises(ScimError) as err:
        Cursors(derive_key("secret-b")).decode(token, "q1")
    assert err.value.scim_type == "invalidCursor"
    with pytest.raises(ScimError) as err:
        c.decode(token, "q2")
    assert err.value.scim_type == "invalidCursor"


def test_without_a_secret_the_key_is_random_per_process() -> None:
    """Issue 16: the key was SHA256 of the bind password, recoverable offline from a cursor."""
    assert derive_key("") == derive_key("")  # stable within the process
    assert derive_key("") != derive_key("s")
    code = "from bridge.scim.cursor import derive_key; print(derive_key('').hex())"
    import subprocess
    import sys

    keys = {
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout
        for _ in range(2)
    }
    assert len(keys) == 2  # another process, another key
