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
    #: the ordering rule string comparisons and sorts need (None: the server's default).
    #: OpenLDAP's stock schema gives ``uid``, ``cn``, ``sn``... no ORDERING rule, so ``>=`` never
    #: matches there; translate/filter.py then uses the extensible form ``(a:rule:=v)``
    ordering_rule: str | None = None
    #: the attributes (lower case) that ``ordering_rule`` applies to in a filter; an ordering
    #: comparison on any other string attribute is refused (None: every attribute)
    ordering_attributes: frozenset[str] | None = None
    #: a sort sends the id as a second key so that pages are stable when values repeat (AD
    #: accepts a single sort key)
    sort_tie_breaker: bool = False


#: attributes caseIgnoreOrderingMatch applies to in slapd 2.5's stock schemas (core, cosine,
#: inetorgperson, nis; ``matchingRuleUse`` of cn=subschema).  In a filter, the rule on any other
#: attribute (``mail``: IA5String) evaluates to Undefined and silently matches nothing, so an
#: ordering comparison on those is refused instead.  (Sorting by them works: sssvlv accepts it.)
OPENLDAP_ORDERING = frozenset(
    a.lower()
    for a in """buildingName businessCategory c carLicense cn co departmentNumber description
    destinationIndicator displayName dmdName dnQualifier documentIdentifier documentLocation
    documentPublisher documentTitle documentVersion drink employeeNumber employeeType
    generationQualifier givenName homePhone host houseIdentifier info initials
    ipServiceProtocol knowledgeInformation l labeledURI mobile name nisMapName o
    organizationalStatus ou pager personalTitle physicalDeliveryOfficeName postOfficeBox
    postalCode preferredLanguage pseudonym ref roomNumber serialNumber sn st street
    telephoneNumber textEncodedORAddress title uid uniqueIdentifier userClass""".split()  # noqa: SIM905 - a list to compare with `ldapsearch` output
)


DIALECTS = {
    "openldap": Dialect(
        "openldap",
        "entryDN",
        "createTimestamp",
        "modifyTimestamp",
        "entryCSN",
        must_change=("pwdReset", b"TRUE"),
        ordering_rule="caseIgnoreOrderingMatch",
        ordering_attributes=OPENLDAP_ORDERING,
        sort_tie_breaker=True,
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
