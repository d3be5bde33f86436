"""The airlock's file store: bytes by SHA-256, checked against their hash on every read.

A file is written to a temporary name in the store, flushed to disk and renamed to
``<root>/<first two hex digits>/<sha256>``: a crash leaves either the whole file or none
(at worst a stray temporary file), and the same bytes are stored once however many
requests hold them. The store's folder is private (0700) to the services' account.

:func:`check_name` and :func:`check_size` are the rules on what may come in: a plain file
name (no folders, no ``..``, no hidden or control characters) with an allowed ending, and
at most the size limit (``SDE_AIRLOCK_FILE_TYPES``, ``SDE_AIRLOCK_MAX_FILE_MB``).

>>> check_name("table 1.csv", ("csv", "png"))
'csv'
>>> check_name("../registry.sqlite", ("csv",))
Traceback (most recent call last):
...
sde.errors.InvalidInput: '../registry.sqlite' is not a plain file name (letters, digits, ...)
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path

from sde.errors import BackendUnavailable, InvalidInput

#: A file name: ASCII letters, digits, space and ``._()+-``, not starting with a dot. Names
#: that only look alike (zero-width, bidi, confusable or control characters) cannot be made.
_PLAIN = re.compile(r"[A-Za-z0-9_(][A-Za-z0-9 ._()+-]{0,254}")
#: A file group's name: the same characters, at most 100.
GROUP_NAME = re.compile(r"[A-Za-z0-9_(][A-Za-z0-9 ._()+-]{0,99}")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def check_name(name: str, allowed: Sequence[str]) -> str:
    """The file's type (its ending, lower case) if ``name`` may enter the airlock."""
    if not _PLAIN.fullmatch(name) or name.strip() != name or ".." in name:
        raise InvalidInput(
            "airlock.file-name",
            f"{name!r} is not a plain file name (letters, digits, spaces and ._()+- only, not "
            "starting with a dot, no folders, at most 255 characters)",
        )
    kind = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    if kind not in {a.lower() for a in allowed}:
        raise InvalidInput(
            "airlock.file-type",
            f"{name!r}: files of type {kind or '(none)'!r} cannot leave the environment; "
            f"allowed: {', '.join(sorted(allowed))}",
        )
    return kind


def check_group_name(name: str) -> None:
    if not GROUP_NAME.fullmatch(name) or name != name.strip():
        raise InvalidInput(
            "airlock.group-name",
            f"{name!r} is not a group name (letters, digits, spaces and ._()+- only, at most 100)",
        )


def check_size(name: str, size: int, max_mb: float) -> None:
    if size > max_mb * 1_000_000:
        raise InvalidInput(
            "limits.too-large",
            f"{name!r} has {size:,} bytes; the airlock takes files of at most {max_mb:g} MB",
        )
    if size == 0:
        raise InvalidInput("airlock.file-empty", f"{name!r} is empty")


class FileStore:
    """Files by SHA-256 under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(mode=0o700, parents=True, exist_ok=True)

    def path(self, sha256: str) -> Path:
        if not _SHA256.match(sha256):
            raise InvalidInput("airlock.file-hash", f"{sha256!r} is not a SHA-256")
        return self.root / sha256[:2] / sha256

    def put(self, data: bytes) -> str:
        """Store ``data`` (once); its SHA-256."""
        sha256 = hashlib.sha256(data).hexdigest()
        target = self.path(sha256)
        if target.exists() and self._matches(target, sha256):
            return sha256
        target.parent.mkdir(mode=0o700, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=".incoming-")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(temporary, 0o400)
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        return sha256

    def get(self, sha256: str) -> bytes:
        """The bytes stored under ``sha256``, refused if they no longer match it."""
        try:
            data = self.path(sha256).read_bytes()
        except FileNotFoundError:
            raise BackendUnavailable(
                "airlock.file-missing", f"the stored file {sha256[:12]} is missing from the store"
            ) from None
        if hashlib.sha256(data).hexdigest() != sha256:
            raise BackendUnavailable(
                "airlock.file-corrupt",
                f"the stored file {sha256[:12]} no longer matches its hash; it will not be served",
            )
        return data

    def _matches(self, path: Path, sha256: str) -> bool:
        return hashlib.sha256(path.read_bytes()).hexdigest() == sha256
