"""What keeps a multi-step write whole: compensation, what-was-left reports, and uniqueness that
holds under races.  Used by the service; no HTTP and no LDAP library here.

LDAP makes one operation atomic, never two.  The service's writes that take two operations are:

* rename + modify (PUT/PATCH changing the naming attribute): the modify goes first; when the
  rename then fails, :func:`undo_changes` inverts exactly what the modify applied (the applied
  ``add``/``delete`` values, and for ``replace`` the before-image read just before the modify).
  If the undo fails too, :func:`left_behind` rewrites the error so its detail says exactly what
  the entry now holds - the client (and the log) learn it, nothing is silently half-done.
* create + unique check for a unique attribute that is *not* the RDN: the directory decides
  uniqueness of the RDN itself (entryAlreadyExists, atomic), but a pre-check on another
  attribute races.  :func:`duplicates_after_create` re-checks after the add; the loser (the
  later entry, by creation time then change sequence number - the same answer for every
  observer) deletes its own entry and answers 409.  (Known limit: between the add and that
  delete the duplicate is visible to readers.)
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from bridge.directory.base import Change, Directory, Entry
from bridge.directory.syntax import normalize_dn
from bridge.errors import DirectoryError, ScimError

log = logging.getLogger("bridge.integrity")


def before_image(directory: Directory, dn: str, changes: Sequence[Change]) -> Entry | None:
    """The current values of every attribute a ``replace`` in ``changes`` will overwrite, read
    just before the modify (the entry the service found may not hold them: PATCH never reads
    the member list)."""
    attrs = sorted({c.attr for c in changes if c.op == "replace" or not c.values})
    if not attrs:
        return Entry(dn, {})
    return directory.read(dn, attrs)


def inverse(applied: Sequence[Change], before: Entry) -> list[Change]:
    """The changes that undo ``applied`` (which the directory accepted atomically: every added
    value was absent and every deleted value present, so the inverse is exact)."""
    undo: list[Change] = []
    for ch in reversed(applied):
        if ch.op == "replace":
            undo.append(Change("replace", ch.attr, tuple(before.get(ch.attr))))
        elif ch.values:
            undo.append(Change("delete" if ch.op == "add" else "add", ch.attr, ch.values))
        else:  # delete of a whole attribute: restore what it held
            undo.append(Change("replace", ch.attr, tuple(before.get(ch.attr))))
    return undo


def describe(changes: Sequence[Change]) -> str:
    """Attribute names and operations, never values (passwords may be among them)."""
    return ", ".join(f"{c.op} {c.attr}" for c in changes) or "nothing"


def left_behind(
    original: ScimError | DirectoryError,
    dn: str,
    applied: Sequence[Change],
    undo_error: DirectoryError,
) -> ScimError:
    """The client's error for a failed second step whose compensation failed as well: the
    status of the original failure, with a detail that says exactly what was left."""
    err = original.to_scim() if isinstance(original, DirectoryError) else original
    err.detail = (
        f"{err.detail}. The entry {dn} was modified first ({describe(applied)}) and undoing "
        f"that failed ({undo_error.code}): those changes remain applied under the old name"
    )
    err.args = (err.detail,)
    log.error(
        "partial write left behind",
        extra={
            "dn": dn,
            "applied": describe(applied),
            "undo_error": undo_error.code,
            "cause": err.detail,
        },
    )
    return err


def duplicates_after_create(
    directory: Directory,
    base: str,
    flt: str,
    scope: str,
    mine: str,
    created: str,
    version: str,
) -> bool:
    """True when the entry ``mine`` just created lost a uniqueness race: another entry matching
    ``flt`` was created before it.  Order: the creation time (``createTimestamp``/
    ``whenCreated``, whole seconds), then the change sequence (``entryCSN`` - microseconds and a
    counter - or AD's ``uSNChanged``), which a single directory server assigns in increasing
    order.  Every racer computes the same order, and the first entry wins even when its own
    request re-checked before the second entry existed."""
    found = directory.search(base, flt, [created, version], scope=scope).entries  # type: ignore[arg-type]
    if len(found) < 2:
        return False

    def key(e: Entry) -> tuple[tuple[int, bytes], tuple[int, bytes], str]:
        return (_ordered(e.first(created)), _ordered(e.first(version)), normalize_dn(e.dn))

    winner = min(found, key=key)
    return normalize_dn(winner.dn) != normalize_dn(mine)


def _ordered(raw: bytes | None) -> tuple[int, bytes]:
    """A sortable form: numbers (uSNChanged) by value, text (GeneralizedTime, entryCSN) as is."""
    if raw is None:
        return (2**63, b"")
    return (int(raw), b"") if raw.isdigit() else (0, raw)
