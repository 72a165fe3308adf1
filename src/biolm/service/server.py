"""Run the service with uvicorn: `serve(run, settings)` blocks until SIGINT/SIGTERM.

On a signal uvicorn stops accepting connections, lets in-flight requests finish for up to
``graceful_timeout_s``, then the app's lifespan drains the micro-batcher.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from biolm.runs import Run
from biolm.service.app import ServeSettings, create_app
from biolm.service.middleware import access_log

log = logging.getLogger(__name__)

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def serve(run: Run | str | Path | None, settings: ServeSettings) -> None:
    """Serve one run over HTTP until interrupted.

    Args:
        run: a loaded `Run` or a run folder (None: the knowledge base of ``settings.kb`` alone).
        settings: host, port, limits, API key, batching (see `ServeSettings`).
    """
    import torch
    import uvicorn

    if settings.torch_threads:
        torch.set_num_threads(int(settings.torch_threads))
    # Access lines are JSON, one per line, for log shippers: a plain handler, not the CLI's rich one
    # (which wraps long lines and costs a millisecond per request).
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    access_log.handlers[:] = [handler]
    access_log.setLevel(logging.INFO)
    access_log.propagate = False

    app = create_app(run, settings)
    if settings.host not in LOOPBACK:
        log.warning("binding %s: the service is reachable from other machines%s", settings.host, "" if settings.api_key else "; consider api_key=...")
    log.info("open http://%s:%d/ (page) or /docs (OpenAPI)", settings.host, settings.port)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=int(settings.port),
        timeout_graceful_shutdown=int(round(settings.graceful_timeout_s)),
        access_log=False,  # our AccessLogMiddleware writes structured lines instead
        log_config=None,  # keep the CLI's logging setup
        lifespan="on",
        server_header=False,
    )
    uvicorn.Server(config).run()
