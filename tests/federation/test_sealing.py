"""The project key sealed for the nodes: it opens only as sealed."""

from __future__ import annotations

import base64

import pytest

from sde.errors import AccessDenied, SDEError
from sde.federation.sealing import SealRefused, seal, unseal

SECRET = b"s" * 40
KEY = bytes(range(32))


def test_a_sealed_key_opens_with_the_same_secret_and_project() -> None:
    assert unseal(SECRET, "demo", seal(SECRET, "demo", KEY)) == KEY


def test_sealing_twice_gives_different_tokens() -> None:
    assert seal(SECRET, "demo", KEY) != seal(SECRET, "demo", KEY)


def test_the_token_does_not_hold_the_key_in_clear() -> None:
    raw = base64.urlsafe_b64decode(seal(SECRET, "demo", KEY))
    assert KEY not in raw


def _refused(secret: bytes, project: str, token: str) -> SDEError:
    with pytest.raises(SealRefused) as caught:
        unseal(secret, project, token)
    return caught.value


def test_another_secret_is_refused() -> None:
    err = _refused(b"t" * 40, "demo", seal(SECRET, "demo", KEY))
    assert err.rule == "federation.bad-key"
    assert "demo" in err.message
    assert isinstance(err, AccessDenied)


def test_another_project_is_refused() -> None:
    assert _refused(SECRET, "other", seal(SECRET, "demo", KEY)).rule == "federation.bad-key"


@pytest.mark.parametrize("position", [0, 1, 5, 13, 20, -1])
def test_every_flipped_byte_is_refused(position: int) -> None:
    raw = bytearray(base64.urlsafe_b64decode(seal(SECRET, "demo", KEY)))
    raw[position] ^= 0x01
    token = base64.urlsafe_b64encode(bytes(raw)).decode()
    assert _refused(SECRET, "demo", token).rule == "federation.bad-key"


@pytest.mark.parametrize("token", ["", "!!!not base64!!!", "AAAA", "é", "A" * 5000])
def test_garbage_tokens_are_refused(token: str) -> None:
    assert _refused(SECRET, "demo", token).rule == "federation.bad-key"


def test_a_truncated_token_is_refused() -> None:
    token = seal(SECRET, "demo", KEY)
    assert _refused(SECRET, "demo", token[:-8]).rule == "federation.bad-key"
