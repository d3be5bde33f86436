"""Secrets of a login: argon2id password hashes and TOTP secrets encrypted at rest.

Passwords are hashed with argon2id (:class:`Passwords`: ``argon2-cffi``'s defaults, RFC
9106's low-memory profile); a hash made with other parameters is replaced on the next good
login.

A TOTP secret is stored as a Fernet token (AES-128-CBC with HMAC-SHA256), under a key
derived with HKDF-SHA256 from ``SDE_SECRET_KEY``: the key is never stored, so a copy of the
registry alone does not yield anyone's codes. Changing ``SDE_SECRET_KEY`` makes stored
secrets unreadable: every user must then enrol again.

>>> cipher = TotpCipher("x" * 32)
>>> token = cipher.encrypt("JBSWY3DPEHPK3PXP")
>>> "JBSWY3DPEHPK3PXP" in token, cipher.decrypt(token)
(False, 'JBSWY3DPEHPK3PXP')

The first RFC 6238 test vector (time 59 s is step 1; the RFC's 8 digits are 94287082):

>>> totp_code("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ", totp_step(59))
'287082'
"""

from __future__ import annotations

import base64
import hmac

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from sde.errors import ConfigurationError

#: RFC 6238 as every authenticator app does it: SHA-1, 6 digits, 30-second steps.
TOTP_DIGITS = 6
TOTP_STEP_SECONDS = 30
#: Steps either side of the current one that are accepted (clock drift).
TOTP_DRIFT_STEPS = 1
_HKDF_INFO = b"sde-workbench totp-secret v1"


class Passwords:
    """argon2id hashing with one set of parameters (by default argon2-cffi's, RFC 9106's
    low-memory profile; tests pass a cheaper one, the same algorithm).

    >>> from argon2 import PasswordHasher, profiles
    >>> cheap = Passwords(PasswordHasher.from_parameters(profiles.CHEAPEST))
    >>> stored = cheap.hash("a long passphrase")
    >>> stored.startswith("$argon2id$"), cheap.check(stored, "a long passphrase")
    (True, True)
    >>> cheap.check(stored, "a wrong one"), cheap.check(None, "anything")
    (False, False)
    """

    def __init__(self, hasher: PasswordHasher | None = None) -> None:
        self._hasher = hasher or PasswordHasher()
        self._dummy: str | None = None

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def check(self, stored: str | None, password: str) -> bool:
        """Whether ``password`` matches ``stored``; with no hash (unknown user, no
        password) it is checked against a dummy hash, so the answer takes as long."""
        if stored is None and self._dummy is None:
            self._dummy = self._hasher.hash("not the password of anyone")
        try:
            return self._hasher.verify(stored or self._dummy or "", password) and bool(stored)
        except (VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, stored: str) -> bool:
        """Whether ``stored`` was made with other parameters (then hash again at login)."""
        return self._hasher.check_needs_rehash(stored)


def new_totp_secret() -> str:
    """A fresh base32 TOTP secret (160 bits, as RFC 4226 recommends)."""
    return pyotp.random_base32(32)


def totp_uri(secret: str, username: str, issuer: str = "SDE Workbench") -> str:
    """The ``otpauth://`` URI an authenticator app reads (usually from a QR code)."""
    return pyotp.TOTP(secret).provisioning_uri(name=username, issuer_name=issuer)


def totp_code(secret: str, step: int) -> str:
    """The code of time step ``step`` (unix time // 30)."""
    return pyotp.TOTP(secret, digits=TOTP_DIGITS).generate_otp(step)


def totp_step(unix_time: float) -> int:
    return int(unix_time // TOTP_STEP_SECONDS)


def matching_step(secret: str, code: str, now_step: int, after: int | None) -> int | None:
    """The step within the drift window whose code is ``code`` and that is newer than
    ``after`` (the last step accepted), or None. Compared in constant time."""
    code = code.replace(" ", "")
    if len(code) != TOTP_DIGITS or not code.isdigit():
        return None
    found = None
    for step in range(now_step - TOTP_DRIFT_STEPS, now_step + TOTP_DRIFT_STEPS + 1):
        if hmac.compare_digest(totp_code(secret, step), code) and (after is None or step > after):
            found = step
    return found


class TotpCipher:
    """Encrypts and decrypts TOTP secrets under a key derived from the workbench secret."""

    def __init__(self, workbench_secret: str) -> None:
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_HKDF_INFO).derive(
            workbench_secret.encode()
        )
        self._fernet = Fernet(base64.urlsafe_b64encode(key))

    def encrypt(self, secret: str) -> str:
        return self._fernet.encrypt(secret.encode()).decode("ascii")

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode("ascii")).decode()
        except InvalidToken:
            raise ConfigurationError(
                "auth.totp-key",
                "a stored TOTP secret cannot be decrypted: SDE_SECRET_KEY has changed "
                "since it was enrolled (enrol the user again)",
            ) from None

    def __repr__(self) -> str:
        return "TotpCipher(<key hidden>)"
