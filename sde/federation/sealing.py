"""The project's pseudonymisation key, sealed for the nodes.

A node builds the project's extract with the project key (its pseudonyms must agree with
every other node's), but never holds the registry where keys live: the coordinator sends
the key in each request, sealed with AES-256-GCM under a key derived from the shared
secret by HKDF-SHA256. The project's name is the associated data, so a key sealed for one
project does not open as another's. A token is URL-safe base64 of
``version byte | 12-byte nonce | ciphertext and tag``.

>>> secret = b"s" * 32
>>> token = seal(secret, "demo", b"k" * 32)
>>> unseal(secret, "demo", token) == b"k" * 32
True
>>> try:
...     unseal(b"t" * 32, "demo", token)
... except SealRefused as err:
...     err.rule
'federation.bad-key'
"""

from __future__ import annotations

import base64
import binascii
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from sde.errors import AccessDenied

_VERSION = b"\x01"
_INFO = b"sde-workbench federation project key v1"
_NONCE_BYTES = 12
#: A sealed token longer than this is refused before decoding (keys are 32 bytes).
MAX_TOKEN_CHARS = 1024


class SealRefused(AccessDenied):
    """A sealed project key that does not open: tampered, for another project, or sealed
    under another secret."""

    default_rule = "federation.bad-key"


def _aead(secret: bytes) -> AESGCM:
    kdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO)
    return AESGCM(kdf.derive(secret))


def seal(secret: bytes, project: str, key: bytes) -> str:
    """``key`` sealed for the nodes sharing ``secret``, bound to ``project``."""
    nonce = os.urandom(_NONCE_BYTES)
    sealed = _aead(secret).encrypt(nonce, key, project.encode("utf-8"))
    return base64.urlsafe_b64encode(_VERSION + nonce + sealed).decode("ascii")


def unseal(secret: bytes, project: str, token: str) -> bytes:
    """The project key in ``token``; :class:`SealRefused` (``federation.bad-key``) if the
    token is malformed, tampered, for another project, or sealed under another secret."""
    if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_CHARS:
        raise SealRefused(message="the sealed project key is missing or too long")
    try:
        raw = base64.urlsafe_b64decode(token.encode("ascii"))
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise SealRefused(message="the sealed project key is not base64") from None
    if len(raw) < 1 + _NONCE_BYTES + 16 or raw[:1] != _VERSION:
        raise SealRefused(message="the sealed project key is not a sealed key this node reads")
    nonce, sealed = raw[1 : 1 + _NONCE_BYTES], raw[1 + _NONCE_BYTES :]
    try:
        return _aead(secret).decrypt(nonce, sealed, project.encode("utf-8"))
    except InvalidTag:
        raise SealRefused(
            message=f"the sealed project key does not open for project {project} under this "
            "node's shared secret (tampered, another project's, or another secret)"
        ) from None


__all__ = ["MAX_TOKEN_CHARS", "SealRefused", "seal", "unseal"]
