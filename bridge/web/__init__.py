"""HTTP: the Starlette app, auth, telemetry, the SCIM resource and operations routes, the ASGI
factory.  The only package that sees a Request (and the only one that imports starlette)."""
