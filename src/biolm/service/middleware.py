"""ASGI middleware of the service: request body limit and structured access logs.

`BodyLimitMiddleware` answers 413 before the app reads an oversized body; `AccessLogMiddleware`
writes one JSON line per request (``request_id, method, path, status, duration_ms, client``) on
the ``biolm.service.access`` logger and returns the id in an ``X-Request-ID`` header.
"""

from __future__ import annotations

import json
import logging
import time
import uuid

from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

access_log = logging.getLogger("biolm.service.access")


class BodyLimitMiddleware:
    """Answer 413 to request bodies over ``max_bytes`` (declared or streamed) before the app reads them.

    Bodies are also declared JSON whatever their content type: the API takes nothing else, and
    ``curl -d '{...}'`` labels its body as a form.
    """

    def __init__(self, app: ASGIApp, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            return await self._reject(scope, receive, send)
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_bytes:
                return await self._reject(scope, receive, send)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if body:
            headers = [(k, v) for k, v in scope["headers"] if k != b"content-type"]
            scope = {**scope, "headers": [*headers, (b"content-type", b"application/json")]}
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _reject(self, scope: Scope, receive: Receive, send: Send) -> None:
        detail = f"request body larger than {self.max_bytes} bytes (max_body_bytes); send fewer or shorter sequences per request"
        await JSONResponse({"detail": detail}, status_code=413)(scope, receive, send)


class AccessLogMiddleware:
    """One JSON line per request on the ``biolm.service.access`` logger; adds an ``X-Request-ID`` header."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        request_id = uuid.uuid4().hex[:16]
        start = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            client = scope.get("client")
            record = {
                "event": "access",
                "request_id": request_id,
                "method": scope.get("method"),
                "path": scope.get("path"),
                "status": status,
                "duration_ms": round(1000 * (time.perf_counter() - start), 2),
                "client": f"{client[0]}:{client[1]}" if client else None,
            }
            access_log.info(json.dumps(record))
