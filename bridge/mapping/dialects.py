"""The directory dialects: what differs between OpenLDAP, 389 DS and Active Directory, as data.

A mapping names one with ``dialect:``; its values are the defaults the loader fills in.  A new
directory is a new row here, not an ``if`` in the code.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Dialect:
    name: str
    #: attribute that holds an entry's own DN, usable in filters (batched DN -> entry lookups)
    dn_attribute: str
    #: default meta attributes
    created: str
    last_modified: str
    version: str
    #: default create_steps: LDAP attributes held back from the add and written afterwards, one
    #: modify per step, in order (AD: the password, then the enabled flag)
    create_steps: tuple[tuple[str, ...], ...] = ()
    #: (attribute, value) that makes the user change a password the bridge set
    #: (``password_must_change: true``)
    must_change: tuple[str, bytes] | None = None


DIALECTS = {
    "openldap": Dialect(
        "openldap",
        "entryDN",
        "createTimestamp",
        "modifyTimestamp",
        "entryCSN",
        must_change=("pwdReset", b"TRUE"),
    ),
    "389ds": Dialect("389ds", "entrydn", "createTimestamp", "modifyTimestamp", "modifyTimestamp"),
    # AD refuses to enable an account without a password (52D): create it disabled, set the
    # password, then enable it.  pwdLastSet=0 means "must change at next sign-in".
    "active-directory": Dialect(
        "active-directory",
        "distinguishedName",
        "whenCreated",
        "whenChanged",
        "uSNChanged",
        create_steps=(("unicodePwd", "pwdLastSet"), ("userAccountControl",)),
        must_change=("pwdLastSet", b"0"),
    ),
}
