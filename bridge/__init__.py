"""scim-ldap-bridge: a SCIM 2.0 service provider backed by LDAP / Active Directory."""

__version__ = "0.1.0"
