"""The bridge as production runs it, for ``uvicorn --workers N bench.asgi:app``: settings from the
``BRIDGE_*`` environment, the mapping file, a real directory.  (Uses ``bridge.asgi`` instead when
the package provides one.)"""

from __future__ import annotations

from bridge.app import build_app
from bridge.settings import Settings

app = build_app(Settings.from_env())
