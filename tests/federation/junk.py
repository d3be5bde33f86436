"""A real HTTP server on loopback that plays a broken node agent (not a mock object).

Each mode answers ``POST /v1/query`` (and ``/v1/explain``) in one wrong way: junk bytes,
an unsigned Arrow stream, a signed answer that is not Arrow, a signed Arrow table of the
wrong columns, an answer signed under another secret, a refusal, an internal error page
carrying engine text, or no answer within the timeout.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pandas as pd

from sde.federation.signing import HEADER_NONCE, HEADER_SIGNATURE, response_signature
from sde.federation.wire import ARROW_STREAM, encode_frame

#: What a broken node's error page says: it must never reach a researcher.
ENGINE_TEXT = "Binder Error: raw value 9990000001 in column person_source_value"

MODES = (
    "junk",
    "unsigned-arrow",
    "signed-junk",
    "wrong-columns",
    "wrong-types",
    "other-secret",
    "refuse",
    "crash",
    "slow",
)
#: Not broken: refuses its first request as stale (as an agent that just restarted), then
#: answers a count of 7.
STALE_ONCE = "stale-once"


class JunkNode:
    """A broken node at ``url``; ``mode`` may be changed between requests."""

    def __init__(self, secret: bytes, mode: str = "junk") -> None:
        self.secret = secret
        self.mode = mode
        self.requests = 0
        self.release = threading.Event()  # set to end a "slow" answer
        node = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                node.requests += 1
                node.answer(self, self.headers.get(HEADER_NONCE) or "")

            def do_GET(self) -> None:  # healthz: alive, whatever it answers to queries
                _send(self, 200, b'{"status": "ok"}', "application/json")

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/"

    def answer(self, handler: BaseHTTPRequestHandler, nonce: str) -> None:
        arrow = encode_frame(pd.DataFrame({"f_a0": [7]}))
        wrong = encode_frame(pd.DataFrame({"surprise": [1], "f_a0": [2]}))
        words = encode_frame(pd.DataFrame({"f_a0": ["seven"]}))
        signed = {
            "wrong-types": (200, words, self.secret),
            "signed-junk": (200, b"\x00\x01 definitely not arrow", self.secret),
            "wrong-columns": (200, wrong, self.secret),
            "other-secret": (200, arrow, b"x" * 32),
        }
        if self.mode in signed:
            status, body, secret = signed[self.mode]
            _send(handler, status, body, ARROW_STREAM, response_signature(secret, nonce, body))
        elif self.mode == STALE_ONCE and self.requests == 1:
            doc = {"error": "AccessDenied", "rule": "federation.stale", "message": "restarted"}
            _send(handler, 401, json.dumps(doc).encode(), "application/json")
        elif self.mode == STALE_ONCE:
            _send(handler, 200, arrow, ARROW_STREAM, response_signature(self.secret, nonce, arrow))
        elif self.mode == "unsigned-arrow":
            _send(handler, 200, arrow, ARROW_STREAM)
        elif self.mode == "refuse":
            doc = {"error": "ScopeViolation", "rule": "nodes.not-allowed", "message": "no"}
            _send(handler, 403, json.dumps(doc).encode(), "application/json")
        elif self.mode == "crash":
            _send(handler, 500, f"<h1>Traceback</h1>{ENGINE_TEXT}".encode(), "text/html")
        elif self.mode == "slow":
            self.release.wait(60)
            _send(handler, 200, arrow, ARROW_STREAM, response_signature(self.secret, nonce, arrow))
        else:
            _send(handler, 200, b"<html>hello</html>", "text/html")

    def __enter__(self) -> JunkNode:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(10)


def _send(
    handler: BaseHTTPRequestHandler,
    status: int,
    body: bytes,
    content_type: str,
    signature: str | None = None,
) -> None:
    handler.send_response(status)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(body)))
    if signature is not None:
        handler.send_header(HEADER_SIGNATURE, signature)
    handler.end_headers()
    with suppress(BrokenPipeError, ConnectionResetError):  # the coordinator gave up waiting
        handler.wfile.write(body)


@contextmanager
def junk_node(secret: bytes, mode: str = "junk") -> Iterator[JunkNode]:
    with JunkNode(secret, mode) as node:
        yield node
