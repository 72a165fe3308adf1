"""The prediction service (FastAPI): `create_app` builds it for one run, `serve` runs it with uvicorn."""

from biolm.service.app import ServeSettings, create_app
from biolm.service.server import serve

__all__ = ["ServeSettings", "create_app", "serve"]
