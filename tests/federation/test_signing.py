"""Request and answer signatures: what a node accepts and refuses, and secret files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sde.errors import AccessDenied, ConfigurationError
from sde.federation.signing import (
    HEADER_NONCE,
    HEADER_SIGNATURE,
    HEADER_TIME,
    Verifier,
    create_secret,
    read_secret,
    response_signature,
    sign_request,
    verify_response,
)

SECRET = b"k" * 40
BODY = b'{"project": "demo"}'
NOW = 1_800_000_000.0


def _rule(verifier: Verifier, headers: dict[str, str], body: bytes = BODY, now: float = NOW) -> str:
    with pytest.raises(AccessDenied) as caught:
        verifier.verify(headers, body, now=now)
    return caught.value.rule


def test_a_signed_request_is_accepted_and_returns_its_nonce() -> None:
    headers = sign_request(SECRET, BODY, now=NOW)
    assert Verifier(SECRET).verify(headers, BODY, now=NOW + 5) == headers[HEADER_NONCE]


def test_headers_are_read_whatever_their_case() -> None:
    headers = {k.lower(): v for k, v in sign_request(SECRET, BODY, now=NOW).items()}
    assert Verifier(SECRET).verify(headers, BODY, now=NOW)


@pytest.mark.parametrize("dropped", [HEADER_TIME, HEADER_NONCE, HEADER_SIGNATURE])
def test_a_missing_header_is_unsigned(dropped: str) -> None:
    headers = sign_request(SECRET, BODY, now=NOW)
    del headers[dropped]
    assert _rule(Verifier(SECRET), headers) == "federation.unsigned"


def test_nothing_at_all_is_unsigned_and_names_the_headers() -> None:
    with pytest.raises(AccessDenied, match="X-SDE-Time, X-SDE-Nonce, X-SDE-Signature"):
        Verifier(SECRET).verify({}, BODY, now=NOW)


@pytest.mark.parametrize(
    "change",
    [
        lambda h, b: (h, b + b" "),  # the body changed
        lambda h, b: ({**h, HEADER_TIME: str(int(NOW) + 1)}, b),  # the time changed
        lambda h, b: ({**h, HEADER_NONCE: "f" * 32}, b),  # the nonce changed
        lambda h, b: ({**h, HEADER_SIGNATURE: "0" * 64}, b),  # a made-up signature
        lambda h, b: ({**h, HEADER_SIGNATURE: "not hex"}, b),  # garbage
        lambda h, b: ({**h, HEADER_NONCE: "short"}, b),  # a malformed nonce
    ],
)
def test_anything_changed_is_a_bad_signature(change: object) -> None:
    headers, body = change(sign_request(SECRET, BODY, now=NOW), BODY)  # type: ignore[operator]
    assert _rule(Verifier(SECRET), headers, body) == "federation.bad-signature"


def test_another_secret_is_a_bad_signature() -> None:
    headers = sign_request(b"o" * 40, BODY, now=NOW)
    assert _rule(Verifier(SECRET), headers) == "federation.bad-signature"


@pytest.mark.parametrize("skew", [31.0, -31.0, 3600.0, -86400.0])
def test_outside_the_window_either_way_is_stale(skew: float) -> None:
    headers = sign_request(SECRET, BODY, now=NOW)
    assert _rule(Verifier(SECRET), headers, now=NOW + skew) == "federation.stale"


@pytest.mark.parametrize("skew", [30.0, -30.0, 0.0])
def test_the_window_edges_are_inside(skew: float) -> None:
    headers = sign_request(SECRET, BODY, now=NOW)
    assert Verifier(SECRET).verify(headers, BODY, now=NOW + skew)


def test_the_window_is_configurable() -> None:
    headers = sign_request(SECRET, BODY, now=NOW)
    assert _rule(Verifier(SECRET, window_s=5), headers, now=NOW + 6) == "federation.stale"
    assert Verifier(SECRET, window_s=120).verify(headers, BODY, now=NOW + 100)


def test_a_nonce_seen_inside_the_window_is_replayed() -> None:
    verifier = Verifier(SECRET)
    headers = sign_request(SECRET, BODY, now=NOW)
    verifier.verify(headers, BODY, now=NOW)
    assert _rule(verifier, headers, now=NOW + 29) == "federation.replayed"
    # After the window the same request is stale, not accepted again.
    assert _rule(verifier, headers, now=NOW + 31) == "federation.stale"


def test_nonces_are_forgotten_after_the_window() -> None:
    verifier = Verifier(SECRET)
    for i in range(50):
        verifier.verify(sign_request(SECRET, BODY, now=NOW + i), BODY, now=NOW + i)
    assert len(verifier) == 31  # those signed within the last 30 s


def test_memory_is_bounded_and_nothing_is_forgotten_early() -> None:
    verifier = Verifier(SECRET, max_nonces=10)
    first = sign_request(SECRET, BODY, now=NOW)
    verifier.verify(first, BODY, now=NOW)
    for _ in range(9):
        verifier.verify(sign_request(SECRET, BODY, now=NOW + 1), BODY, now=NOW + 1)
    assert (
        _rule(verifier, sign_request(SECRET, BODY, now=NOW + 2), now=NOW + 2) == "federation.busy"
    )
    assert len(verifier) == 10
    assert _rule(verifier, first, now=NOW + 2) == "federation.replayed"
    # Once the first nonce has left the window there is room again.
    assert verifier.verify(sign_request(SECRET, BODY, now=NOW + 31), BODY, now=NOW + 31)


def test_answers_are_signed_over_the_request_nonce_and_bytes() -> None:
    nonce = "a" * 32
    signature = response_signature(SECRET, nonce, b"arrow bytes")
    verify_response(SECRET, nonce, b"arrow bytes", signature)
    for args in [
        (SECRET, "b" * 32, b"arrow bytes", signature),  # another request's answer
        (SECRET, nonce, b"arrow bytez", signature),  # changed bytes
        (b"o" * 40, nonce, b"arrow bytes", signature),  # another secret
        (SECRET, nonce, b"arrow bytes", None),  # unsigned
    ]:
        with pytest.raises(AccessDenied) as caught:
            verify_response(*args)
        assert caught.value.rule == "federation.bad-signature"


def test_an_answer_signature_is_never_a_request_signature() -> None:
    headers = sign_request(SECRET, b"x", now=NOW, nonce="c" * 32)
    assert response_signature(SECRET, "c" * 32, b"x") != headers[HEADER_SIGNATURE]


# -- secret files ----------------------------------------------------------------------


def test_a_created_secret_is_private_and_reads_back(tmp_path: Path) -> None:
    path = tmp_path / "node.secret"
    secret = create_secret(path)
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert read_secret(path) == secret
    assert len(secret) >= 32


def test_create_never_overwrites(tmp_path: Path) -> None:
    path = tmp_path / "node.secret"
    create_secret(path)
    with pytest.raises(ConfigurationError, match="exists already"):
        create_secret(path)


@pytest.mark.parametrize(
    ("content", "mode", "says"),
    [
        (b"", 0o600, "is empty"),
        (b"  \n", 0o600, "is empty"),
        (b"x" * 31, 0o600, "holds 31 bytes"),
        (b"x" * 40, 0o640, "group or others"),
        (b"x" * 40, 0o604, "group or others"),
    ],
)
def test_bad_secret_files_are_refused_by_name(
    tmp_path: Path, content: bytes, mode: int, says: str
) -> None:
    path = tmp_path / "bad.secret"
    path.write_bytes(content)
    path.chmod(mode)
    with pytest.raises(ConfigurationError, match=says) as caught:
        read_secret(path)
    assert str(path) in caught.value.message
    assert caught.value.rule == "federation.secret"


def test_a_missing_secret_file_is_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="does not exist") as caught:
        read_secret(tmp_path / "nope.secret")
    assert "nope.secret" in caught.value.message
