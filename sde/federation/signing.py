"""Signed requests and answers between a coordinator and its node agents.

A request carries three headers: ``X-SDE-Time`` (Unix seconds, to the millisecond),
``X-SDE-Nonce`` (32 hex characters, never reused) and ``X-SDE-Signature``, the hex
HMAC-SHA256 under the shared secret of ``time + "\\n" + nonce + "\\n" + sha256hex(body)``.
A node refuses a request without them (``federation.unsigned``), with a wrong signature
(``federation.bad-signature``), more than the window (30 s) from its clock or signed before
the node's verifier started (``federation.stale``), or whose nonce it has seen inside the
window (``federation.replayed``). Nonces are held in memory only: refusing every request
signed before the start is what keeps a request captured before a restart from being
replayed into the fresh agent (a coordinator signs again and retries once). An answer is
signed over the request's nonce and the answer's bytes, so the coordinator tells a node's
answer from garbage.

>>> secret = b"s" * 32
>>> headers = sign_request(secret, b"{}", now=1000.0, nonce="0" * 32)
>>> headers[HEADER_TIME]
'1000.000'
>>> Verifier(secret, started=990.0).verify(headers, b"{}", now=1010.0)
'00000000000000000000000000000000'
>>> for verifier, now in ((Verifier(secret, started=990.0), 1031.0),
...                       (Verifier(secret, started=1005.0), 1010.0)):
...     try:
...         verifier.verify(headers, b"{}", now=now)
...     except AccessDenied as err:
...         print(err.rule, "restarted" in err.message)
federation.stale False
federation.stale True
"""

from __future__ import annotations

import hashlib
import hmac
import math
import os
import re
import secrets
import stat
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path

from sde.errors import AccessDenied, ConfigurationError

HEADER_TIME = "X-SDE-Time"
HEADER_NONCE = "X-SDE-Nonce"
HEADER_SIGNATURE = "X-SDE-Signature"

#: Seconds a request may be from the node's clock (either way).
WINDOW_S = 30.0
#: Shortest secret accepted, in bytes.
MIN_SECRET_BYTES = 32
#: Nonces remembered at most: a flood of valid requests cannot grow memory without bound.
#: When full, a new request is refused (``federation.busy``) until nonces leave the window;
#: never is a nonce forgotten while a replay of it could still pass.
MAX_NONCES = 100_000

#: The rule ids of a request refused for its signature, or for what it signed being meant
#: for another node or another route (a node answers them with HTTP 401).
SIGNATURE_RULES = frozenset(
    {
        "federation.unsigned",
        "federation.bad-signature",
        "federation.stale",
        "federation.replayed",
        "federation.wrong-node",
        "federation.wrong-action",
    }
)

_NONCE = re.compile(r"^[0-9a-f]{32}$")
_TIME = re.compile(r"^[0-9]{1,12}(\.[0-9]{1,9})?$")
_SIGNATURE = re.compile(r"^[0-9a-f]{64}$")


def new_nonce() -> str:
    """32 random hex characters."""
    return secrets.token_hex(16)


def _mac(secret: bytes, *parts: str) -> str:
    return hmac.new(secret, "\n".join(parts).encode("ascii"), hashlib.sha256).hexdigest()


def request_signature(secret: bytes, timestamp: str, nonce: str, body: bytes) -> str:
    """Hex HMAC-SHA256 of ``time \\n nonce \\n sha256hex(body)``."""
    return _mac(secret, timestamp, nonce, hashlib.sha256(body).hexdigest())


def sign_request(
    secret: bytes, body: bytes, *, now: float | None = None, nonce: str | None = None
) -> dict[str, str]:
    """The three headers that sign ``body`` (a fresh nonce unless given); the time to the
    millisecond, rounded down, so a request signed just after a node started is never
    dated before it."""
    clock = time.time() if now is None else now
    timestamp = f"{math.floor(clock * 1000) / 1000:.3f}"
    the_nonce = nonce or new_nonce()
    return {
        HEADER_TIME: timestamp,
        HEADER_NONCE: the_nonce,
        HEADER_SIGNATURE: request_signature(secret, timestamp, the_nonce, body),
    }


def response_signature(secret: bytes, nonce: str, answer: bytes) -> str:
    """Hex HMAC-SHA256 of ``"answer" \\n nonce \\n sha256hex(answer)`` (the word keeps an
    answer's signature from ever matching a request's)."""
    return _mac(secret, "answer", nonce, hashlib.sha256(answer).hexdigest())


def verify_response(secret: bytes, nonce: str, answer: bytes, signature: str | None) -> None:
    """Raise ``federation.bad-signature`` unless ``signature`` signs ``answer`` for the
    request whose nonce was ``nonce``."""
    expected = response_signature(secret, nonce, answer)
    if signature is None or not hmac.compare_digest(expected, signature.strip().lower()):
        raise AccessDenied(
            "federation.bad-signature",
            "the node's answer is not signed with the shared secret for this request",
        )


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:
        value = headers.get(name.lower())
    return value


class Verifier:
    """Checks signed requests for one node: signature, time window and nonces.

    Thread-safe. Nonces are remembered while their signed time is inside the window, at
    most ``max_nonces`` of them (more requests inside the window: ``federation.busy``).
    They live in this object only, so a request signed before ``started`` (default: when
    the verifier was made) is refused as stale: this verifier cannot know whether an
    earlier one (the agent before a restart) already accepted it.
    """

    def __init__(
        self,
        secret: bytes,
        *,
        window_s: float = WINDOW_S,
        max_nonces: int = MAX_NONCES,
        started: float | None = None,
    ) -> None:
        if window_s <= 0 or max_nonces < 1:
            raise ConfigurationError(
                "federation.window", "the window and the nonce memory must be positive"
            )
        self._secret = secret
        self.window_s = window_s
        self.max_nonces = max_nonces
        #: Requests signed before this moment (Unix seconds) are refused.
        self.started = time.time() if started is None else started
        self._seen: OrderedDict[str, float] = OrderedDict()  # nonce -> its signed time
        self._lock = threading.Lock()

    def verify(self, headers: Mapping[str, str], body: bytes, *, now: float | None = None) -> str:
        """The request's nonce, if ``headers`` sign ``body`` within the window with a nonce
        not seen in it; else an :class:`~sde.errors.AccessDenied` naming the rule."""
        clock = time.time() if now is None else now
        timestamp, nonce, signature = (
            _header(headers, h) for h in (HEADER_TIME, HEADER_NONCE, HEADER_SIGNATURE)
        )
        if timestamp is None or nonce is None or signature is None:
            names = (HEADER_TIME, HEADER_NONCE, HEADER_SIGNATURE)
            given = (timestamp, nonce, signature)
            missing = [h for h, v in zip(names, given, strict=True) if v is None]
            raise AccessDenied(
                "federation.unsigned",
                f"the request is not signed (missing {', '.join(missing)}): refused",
            )
        if not (_TIME.match(timestamp) and _NONCE.match(nonce) and _SIGNATURE.match(signature)):
            raise AccessDenied(
                "federation.bad-signature",
                f"the request's {HEADER_TIME}, {HEADER_NONCE} or {HEADER_SIGNATURE} header is "
                "malformed (Unix seconds, 32 and 64 lowercase hex characters): refused",
            )
        expected = request_signature(self._secret, timestamp, nonce, body)
        if not hmac.compare_digest(expected, signature):
            raise AccessDenied(
                "federation.bad-signature",
                "the request's signature does not match its body under the shared secret: refused",
            )
        signed = float(timestamp)
        skew = abs(clock - signed)
        if skew > self.window_s:
            raise AccessDenied(
                "federation.stale",
                f"the request was signed {skew:.0f} s from this node's clock (more than "
                f"{self.window_s:g} s): refused",
            )
        if signed < self.started:
            raise AccessDenied(
                "federation.stale",
                f"the request was signed {self.started - signed:.3f} s before this node agent "
                "started (it restarted after the request was signed, so it cannot tell a "
                "replay): refused; sign it again",
            )
        self._remember(nonce, signed, clock)
        return nonce

    def _remember(self, nonce: str, signed: float, clock: float) -> None:
        with self._lock:
            while self._seen:  # forget nonces that can no longer pass the window
                oldest, oldest_signed = next(iter(self._seen.items()))
                if clock - oldest_signed <= self.window_s:
                    break
                del self._seen[oldest]
            if nonce in self._seen:
                raise AccessDenied(
                    "federation.replayed",
                    "the request's nonce was already used inside the window: refused",
                )
            if len(self._seen) >= self.max_nonces:
                raise AccessDenied(
                    "federation.busy",
                    f"this node has taken {self.max_nonces} requests inside the window and "
                    "cannot remember more nonces; send it again shortly",
                )
            self._seen[nonce] = signed

    def __len__(self) -> int:
        with self._lock:
            return len(self._seen)


# -- secret files ----------------------------------------------------------------------


def read_secret(path: str | Path) -> bytes:
    """The shared secret in ``path`` (surrounding whitespace dropped): refused when the file
    is missing, readable by its group or others, empty or shorter than 32 bytes."""
    file = Path(path)
    try:
        mode = file.stat().st_mode
    except OSError:
        raise ConfigurationError(
            "federation.secret", f"secret file {file} does not exist or cannot be read"
        ) from None
    if not stat.S_ISREG(mode):
        raise ConfigurationError("federation.secret", f"secret file {file} is not a file")
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigurationError(
            "federation.secret",
            f"secret file {file} may be read by its group or others (mode {mode & 0o777:04o}); "
            f"chmod 600 {file}",
        )
    try:
        secret = file.read_bytes().strip()
    except OSError:
        raise ConfigurationError(
            "federation.secret", f"secret file {file} cannot be read"
        ) from None
    if len(secret) < MIN_SECRET_BYTES:
        what = "is empty" if not secret else f"holds {len(secret)} bytes"
        raise ConfigurationError(
            "federation.secret",
            f"secret file {file} {what}; a shared secret needs at least {MIN_SECRET_BYTES}",
        )
    return secret


def create_secret(path: str | Path) -> bytes:
    """Write a new random secret (64 hex characters) to ``path`` with mode 0600; refuses
    to overwrite an existing file."""
    file = Path(path)
    secret = secrets.token_hex(32).encode("ascii")
    try:
        fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise ConfigurationError(
            "federation.secret", f"secret file {file} exists already; not overwritten"
        ) from None
    except OSError as err:
        raise ConfigurationError(
            "federation.secret", f"secret file {file} cannot be created ({err.strerror})"
        ) from None
    with os.fdopen(fd, "wb") as out:
        out.write(secret + b"\n")
    os.chmod(file, 0o600)  # the umask cannot have widened it, but say so
    return secret


__all__ = [
    "HEADER_NONCE",
    "HEADER_SIGNATURE",
    "HEADER_TIME",
    "SIGNATURE_RULES",
    "WINDOW_S",
    "Verifier",
    "create_secret",
    "new_nonce",
    "read_secret",
    "request_signature",
    "response_signature",
    "sign_request",
    "verify_response",
]
