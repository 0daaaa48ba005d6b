#!/bin/sh
# Start slapd from config.ldif and base.ldif (next to this script, or in $SLAPD_TEMPLATES).
# On the first start (no $SLAPD_DIR/slapd.d yet) the @...@ placeholders are filled in and both
# files are loaded with slapadd; later starts reuse the data.  The same script starts the
# test's slapd (tests/test_deploy.py), with other directories and ports.
#
#   SLAPD_DIR                   state: slapd.d/, data/, run/     (default /var/lib/ldap-bridge)
#   LDAP_ADMIN_PASSWORD_FILE    password of the rootdn cn=admin,dc=example,dc=org
#   LDAP_SCIM_PASSWORD_FILE     password of cn=scim,dc=example,dc=org, the bridge's account
#   SLAPD_URLS                  listeners (default "ldap:/// ldapi:///")
#   SLAPD_USER, SLAPD_GROUP     run as (default openldap; empty: stay as the caller)
#   SLAPD_MODULE_DIR, SLAPD_SCHEMA_DIR  (default Debian's /usr/lib/ldap, /etc/ldap/schema)
#   SLAPD_DEBUG                 slapd -d level (default "none": errors only, on stderr)
set -eu

here=$(dirname "$0")
templates=${SLAPD_TEMPLATES:-$here}
dir=${SLAPD_DIR:-/var/lib/ldap-bridge}
urls=${SLAPD_URLS:-"ldap:/// ldapi:///"}
user=${SLAPD_USER-openldap}
group=${SLAPD_GROUP-openldap}
modules=${SLAPD_MODULE_DIR:-/usr/lib/ldap}
schema=${SLAPD_SCHEMA_DIR:-/etc/ldap/schema}
PATH="$PATH:/usr/sbin:/usr/local/sbin"

secret() {
  [ -r "$1" ] || { echo "entrypoint: cannot read $1" >&2; exit 2; }
  tr -d '\n' < "$1"
}

render() {
  sed -e "s|@RUN_DIR@|$dir/run|g" -e "s|@DATA_DIR@|$dir/data|g" \
      -e "s|@MODULE_DIR@|$modules|g" -e "s|@SCHEMA_DIR@|$schema|g" \
      -e "s|@ADMIN_PASSWORD_HASH@|$admin_hash|g" -e "s|@SCIM_PASSWORD_HASH@|$scim_hash|g" "$1"
}

if [ ! -d "$dir/slapd.d" ]; then
  admin_hash=$(slappasswd -n -s "$(secret "${LDAP_ADMIN_PASSWORD_FILE:?set it}")")
  scim_hash=$(slappasswd -n -s "$(secret "${LDAP_SCIM_PASSWORD_FILE:?set it}")")
  mkdir -p "$dir/slapd.d.new" "$dir/data" "$dir/run"
  render "$templates/config.ldif" | slapadd -n0 -F "$dir/slapd.d.new"
  render "$templates/base.ldif" | slapadd -q -n1 -F "$dir/slapd.d.new"
  mv "$dir/slapd.d.new" "$dir/slapd.d"
fi
mkdir -p "$dir/run"
if [ -n "$user" ]; then
  chown -R "$user:$group" "$dir"
  exec slapd -d "${SLAPD_DEBUG:-none}" -F "$dir/slapd.d" -h "$urls" -u "$user" -g "$group"
fi
exec slapd -d "${SLAPD_DEBUG:-none}" -F "$dir/slapd.d" -h "$urls"
