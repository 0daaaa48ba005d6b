#!/bin/sh
# Start slapd from config.ldif and base.ldif (next to this script, or in $SLAPD_TEMPLATES).
# On the first start (no $SLAPD_DIR/slapd.d yet) the @...@ placeholders are filled in and both
# files are loaded with slapadd; later starts reuse the data.  The same script starts the
# test's slapd (tests/test_deploy.py), with other directories and ports.
#
#   SLAPD_DIR                   state: slapd.d/, data/, run/     (default /var/lib/ldap-bridge)
#   LDAP_ADMIN_PASSWORD_FILE    password of the rootdn cn=admin,dc=example,dc=org
#   LDAP_SCIM_PASSWORD_FILE     password of cn=scim,dc=example,dc=org, the bridge's account
#   SLAPD_URLS                  listeners (default "ldap:/// ldaps:/// ldapi:///")
#   LDAP_TLS_NAMES              names in the server certificate made on the first start
#                               (default "openldap localhost": the compose service name)
#   LDAP_CA_EXPORT_DIR          where the first start copies ca.crt for the bridge to trust
#                               (default: none; compose shares a volume with the bridge)
#   SLAPD_USER, SLAPD_GROUP     run as (default openldap; empty: stay as the caller)
#   SLAPD_MODULE_DIR, SLAPD_SCHEMA_DIR  (default Debian's /usr/lib/ldap, /etc/ldap/schema)
#   SLAPD_DEBUG                 slapd -d level (default "none": errors only, on stderr)
set -eu

here=$(dirname "$0")
templates=${SLAPD_TEMPLATES:-$here}
dir=${SLAPD_DIR:-/var/lib/ldap-bridge}
urls=${SLAPD_URLS:-"ldap:/// ldaps:/// ldapi:///"}
tls_names=${LDAP_TLS_NAMES:-"openldap localhost"}
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
      -e "s|@MODULE_DIR@|$modules|g" -e "s|@TLS_DIR@|$dir/tls|g" -e "s|@SCHEMA_DIR@|$schema|g" \
      -e "s|@ADMIN_PASSWORD_HASH@|$admin_hash|g" -e "s|@SCIM_PASSWORD_HASH@|$scim_hash|g" "$1"
}

# A private CA and a server certificate on the first start: the bridge sends passwords only
# over an encrypted connection (ldaps://, StartTLS or ldapi), so the directory offers TLS.
make_tls() {
  mkdir -p "$dir/tls"
  san="IP:127.0.0.1"
  for name in $tls_names; do san="$san,DNS:$name"; done
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3650 \
    -subj "/CN=scim-ldap-bridge compose CA" -keyout "$dir/tls/ca.key" -out "$dir/tls/ca.crt" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
    2>/dev/null
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -subj "/CN=${tls_names%% *}" -keyout "$dir/tls/server.key" -out "$dir/tls/server.csr" \
    2>/dev/null
  printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth\n' "$san" > "$dir/tls/ext.cnf"
  openssl x509 -req -in "$dir/tls/server.csr" -CA "$dir/tls/ca.crt" -CAkey "$dir/tls/ca.key" \
    -CAcreateserial -days 3650 -extfile "$dir/tls/ext.cnf" -out "$dir/tls/server.crt" 2>/dev/null
  chmod 600 "$dir/tls/server.key"
  rm -f "$dir/tls/server.csr" "$dir/tls/ca.key"   # nothing more is ever signed with it
}

[ -f "$dir/tls/server.crt" ] || make_tls
if [ -n "${LDAP_CA_EXPORT_DIR:-}" ]; then
  mkdir -p "$LDAP_CA_EXPORT_DIR" && cp "$dir/tls/ca.crt" "$LDAP_CA_EXPORT_DIR/ca.crt"
fi

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
