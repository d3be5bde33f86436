"""Request bodies cut off at a size limit before anything parses them (an ASGI middleware).

JSON bodies are read whole by the framework before a field's own limit can refuse them,
so a body far larger than any field is refused here, as it arrives: by its
``Content-Length`` when it declares one, else while it streams in. The answer is 413 in
the services' error shape. Routes that stream large bodies themselves (file uploads, with
their own limit) are exempt.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: Largest body a JSON route takes.
DEFAULT_LIMIT = 1_000_000


class BodyLimit:
    """Refuse bodies above ``limit`` bytes unless ``exempt(scope)``."""

    def __init__(
        self,
        app: ASGIApp,
        limit: int = DEFAULT_LIMIT,
        exempt: Callable[[Scope], bool] = lambda scope: False,
    ) -> None:
        self.app = app
        self.limit = limit
        self.exempt = exempt

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.exempt(scope):
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await self._refuse(send)
            return
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.limit:
                await self._refuse(send)
                return
            more = bool(message.get("more_body"))
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, send: Send) -> None:
        payload = json.dumps(
            {
                "error": "InvalidInput",
                "rule": "limits.too-large",
                "message": f"the request body is larger than {self.limit:,} bytes",
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(payload)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": payload})


def is_upload(scope: Scope) -> bool:
    """A file upload: the API's ``PUT .../files/<name>`` or a page's upload form (``POST
    .../requests/<id>/files``); each limits the file's size itself."""
    method, path = scope.get("method"), str(scope.get("path", ""))
    return (method == "PUT" and "/files/" in path) or (
        method == "POST" and path.rstrip("/").endswith("/files")
    )
