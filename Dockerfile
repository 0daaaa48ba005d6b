# syntax=docker/dockerfile:1
# scim-ldap-bridge container image (docs/deployment.md "Container").
#
#   docker build -t scim-ldap-bridge:0.1.0 .
#   docker run --read-only -p 8080:8080 -e BRIDGE_LDAP_URL=ldaps://dc1.example.org \
#     -e BRIDGE_BIND_DN=... -e BRIDGE_BIND_PASSWORD_FILE=/run/secrets/bind -e BRIDGE_TOKEN_FILE=... \
#     scim-ldap-bridge:0.1.0
#
# The Debian release is pinned (both stages use the same one): CI checks that every apt package
# named below exists in it (.ci/check_apt_packages.py).  To build on another release, name the
# release and its libldap runtime package, e.g. Debian 13:
#
#   docker build -t scim-ldap-bridge:0.1.0 --build-arg DEBIAN_RELEASE=trixie \
#     --build-arg LIBLDAP_PACKAGE=libldap2 .
ARG PYTHON_VERSION=3.11
ARG DEBIAN_RELEASE=bookworm

# Builder: compiles python-ldap (the optional libldap client) against libldap/libsasl headers
# and builds wheels for everything, so the runtime image needs no compiler.
FROM python:${PYTHON_VERSION}-slim-${DEBIAN_RELEASE} AS builder
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential libldap2-dev libsasl2-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
# bridge/data/mappings/ links to mappings/: both are needed to package the example mappings
COPY mappings ./mappings
COPY bridge ./bridge
RUN pip wheel --no-cache-dir --wheel-dir /wheels ".[libldap]"

# Runtime: shared libraries only, a non-root user, nothing written at run time (works with a
# read-only root filesystem; no .pyc files, logs go to stderr).
FROM python:${PYTHON_VERSION}-slim-${DEBIAN_RELEASE}
# libldap's runtime package is named after its soname: libldap-2.5-0 in bookworm, libldap2 in
# trixie
ARG LIBLDAP_PACKAGE=libldap-2.5-0
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="scim-ldap-bridge" \
      org.opencontainers.image.description="SCIM 2.0 server (RFC 7643/7644) that provisions users and groups into LDAP and Active Directory" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.documentation="README.md"
RUN apt-get update \
 && apt-get install -y --no-install-recommends ${LIBLDAP_PACKAGE} libsasl2-2 ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --home-dir /nonexistent --no-create-home \
      --shell /usr/sbin/nologin bridge
COPY --from=builder /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links=/wheels "scim-ldap-bridge[libldap]" \
 && rm -rf /wheels
COPY mappings/ /etc/scim-ldap-bridge/
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    BRIDGE_MAPPING=/etc/scim-ldap-bridge/openldap.yaml \
    BRIDGE_PORT=8080
USER 10001:10001
EXPOSE 8080
# /healthz needs no token; https when the bridge terminates TLS itself (BRIDGE_TLS_CERT).
# With mutual TLS (BRIDGE_TLS_CLIENT_CA) this check cannot pass: disable it and probe from the
# orchestrator with a client certificate instead.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["python", "-c", "import os, ssl, urllib.request as u; tls = bool(os.environ.get('BRIDGE_TLS_CERT')); u.urlopen(('https' if tls else 'http') + '://127.0.0.1:' + os.environ.get('BRIDGE_PORT', '8080') + '/healthz', timeout=3, context=ssl._create_unverified_context() if tls else None)"]
ENTRYPOINT ["scim-ldap-bridge"]
CMD ["serve", "--host", "0.0.0.0"]
