"""Test and benchmark support: throwaway slapd and Samba AD servers, fault injection, and
clients of those servers.  The tests, ``bench/`` and ``scripts/`` import it; the bridge never
does, and nothing here is used at run time (it is packaged only so that those callers import
it without path tricks)."""
