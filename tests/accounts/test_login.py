"""Logging in (API.md): the truth table, lockout and its expiry, one-time codes used once.

Every case reaches its state through the services (a real login consumes a code, five real
failures lock) on SQLite and PostgreSQL, at fixed times.
"""

from __future__ import annotations

import datetime as dt
import itertools
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import text

from sde.accounts import AccountStore, get_user, unlock, verify_login
from sde.accounts.crypto import totp_code, totp_step
from sde.accounts.model import LOCKOUT, MAX_FAILED_LOGINS
from sde.errors import AccessDenied, ConfigurationError
from sde.registry import open_registry
from tests.accounts.conftest import ADMIN, NOW, PASSWORD, SECRET, Person, make_user

BAD = "auth.bad-credentials"
MINUTE = dt.timedelta(minutes=1)


def expected(password: str, code: str, locked: bool, accredited: bool, staff: bool) -> str:
    """The rule that decides, in the order the login applies them."""
    if locked:
        return "auth.locked"  # nothing else is looked at while locked
    if password != "right" or code != "right":  # noqa: S105 (the table's labels)
        return BAD  # wrong password, wrong code and a reused code look the same
    if not (accredited or staff):
        return "auth.not-accredited"
    return "ok"


TABLE = [
    (*case, expected(*case))
    for case in itertools.product(
        ("right", "wrong"),  # password
        ("right", "wrong", "replayed"),  # code
        (False, True),  # locked
        (True, False),  # accreditation current
        (False, True),  # staff role (output-checker)
    )
]


def _fail(store: AccountStore, person: Person, at: dt.datetime) -> str:
    try:
        verify_login(store, person.username, "not the password", person.code(at), now=at)
    except AccessDenied as err:
        return err.rule
    raise AssertionError("a wrong password was accepted")


def _attempt(store: AccountStore, username: str, password: str, otp: str, at: dt.datetime) -> str:
    try:
        verify_login(store, username, password, otp, now=at)
    except AccessDenied as err:
        return err.rule
    return "ok"


@pytest.mark.parametrize(("password", "code", "locked", "accredited", "staff", "outcome"), TABLE)
def test_login_truth_table(
    store: AccountStore,
    password: str,
    code: str,
    locked: bool,
    accredited: bool,
    staff: bool,
    outcome: str,
) -> None:
    person = make_user(
        store,
        "ada",
        roles=("researcher", "output-checker") if staff else ("researcher",),
        accredited_until=NOW.date() + dt.timedelta(days=1 if accredited else -1),
    )
    if code == "replayed":  # the right code, already used once (whatever that login gave)
        _attempt(store, "ada", person.password, person.code(), NOW - dt.timedelta(seconds=5))
    if locked:  # five failures a minute ago
        for _ in range(MAX_FAILED_LOGINS):
            _fail(store, person, NOW - MINUTE)
    right = password == "right"  # noqa: S105 (the table's label)
    given_password = person.password if right else "Correct horse battery staple"
    given_code = person.code() if code != "wrong" else f"{(int(person.code()) + 1) % 10**6:06d}"
    assert _attempt(store, "ada", given_password, given_code, NOW) == outcome


def test_a_good_login_says_who_and_what(store: AccountStore) -> None:
    ada = make_user(store, "ada")
    result = verify_login(store, "ada", ada.password, ada.code(), now=NOW)
    assert result.username == "ada"
    assert result.roles == {"researcher"}
    assert (result.staff, result.accredited, result.projects, result.may_spawn) == (
        False,
        True,
        (),
        False,
    )
    assert get_user(store, "ada").last_login_at == NOW


def test_unknown_user_wrong_password_and_wrong_code_read_the_same(store: AccountStore) -> None:
    ada = make_user(store, "ada")
    attempts = [
        ("nobody", ada.password, ada.code()),
        ("ada", "wrong password entirely", ada.code()),
        ("ada", ada.password, "000000" if ada.code() != "000000" else "111111"),
        ("ada", ada.password, "not a code"),
    ]
    messages = set()
    for username, password, otp in attempts:
        with pytest.raises(AccessDenied) as info:
            verify_login(store, username, password, otp, now=NOW)
        messages.add((info.value.rule, info.value.message, info.value.details.keys() == set()))
    assert messages == {(BAD, "wrong username, password or one-time code", True)}


def test_five_failures_lock_for_fifteen_minutes_then_the_lock_runs_out(
    store: AccountStore,
) -> None:
    ada = make_user(store, "ada")
    start = NOW
    rules = [_fail(store, ada, start + i * dt.timedelta(seconds=30)) for i in range(5)]
    assert rules == [BAD] * 5  # the fifth failure locks; it still reads as a failure
    locked_at = start + 4 * dt.timedelta(seconds=30)
    assert get_user(store, "ada").locked_until == locked_at + LOCKOUT
    just_before = locked_at + LOCKOUT - dt.timedelta(seconds=1)
    with pytest.raises(AccessDenied) as info:  # the right secrets do not help while locked
        verify_login(store, "ada", ada.password, ada.code(just_before), now=just_before)
    assert info.value.rule == "auth.locked"
    assert "locked until" in info.value.message
    at_end = locked_at + LOCKOUT
    assert verify_login(store, "ada", ada.password, ada.code(at_end), now=at_end).username == "ada"
    assert get_user(store, "ada").failed_logins == 0


def test_after_a_lock_runs_out_failures_count_afresh(store: AccountStore) -> None:
    ada = make_user(store, "ada")
    for _ in range(5):
        _fail(store, ada, NOW)
    later = NOW + LOCKOUT + MINUTE
    assert _fail(store, ada, later) == BAD
    user = get_user(store, "ada")
    assert (user.failed_logins, user.locked_until) == (1, None)


def test_four_failures_then_success_resets_the_count(store: AccountStore) -> None:
    ada = make_user(store, "ada")
    for _ in range(4):
        _fail(store, ada, NOW - MINUTE)
    verify_login(store, "ada", ada.password, ada.code(), now=NOW)
    for _ in range(4):
        _fail(store, ada, NOW + MINUTE)
    assert get_user(store, "ada").locked_until is None


def test_an_administrator_unlocks(store: AccountStore) -> None:
    ada = make_user(store, "ada")
    for _ in range(5):
        _fail(store, ada, NOW - MINUTE)
    unlock(store, ADMIN, "ada")
    assert verify_login(store, "ada", ada.password, ada.code(), now=NOW).username == "ada"


def test_a_code_is_good_once_and_never_an_older_one(store: AccountStore) -> None:
    ada = make_user(store, "ada")
    step = totp_step(NOW.timestamp())
    previous = totp_code(ada.totp_secret, step - 1)
    verify_login(store, "ada", ada.password, previous, now=NOW)  # clock drift: one step back
    with pytest.raises(AccessDenied, match="one-time code"):
        verify_login(store, "ada", ada.password, previous, now=NOW)
    verify_login(store, "ada", ada.password, ada.code(), now=NOW)
    with pytest.raises(AccessDenied):  # an older step after a newer one was used
        verify_login(store, "ada", ada.password, totp_code(ada.totp_secret, step - 1), now=NOW)


def test_codes_outside_the_drift_window_are_refused(store: AccountStore) -> None:
    ada = make_user(store, "ada")
    step = totp_step(NOW.timestamp())
    for far in (step - 2, step + 2):
        with pytest.raises(AccessDenied):
            verify_login(store, "ada", ada.password, totp_code(ada.totp_secret, far), now=NOW)
    next_step = totp_code(ada.totp_secret, step + 1)
    assert verify_login(store, "ada", ada.password, next_step, now=NOW).username == "ada"


def test_accreditation_is_valid_through_its_last_day(store: AccountStore) -> None:
    ada = make_user(store, "ada", accredited_until=NOW.date())
    assert verify_login(store, "ada", ada.password, ada.code(), now=NOW).accredited
    tomorrow = NOW + dt.timedelta(days=1)
    with pytest.raises(AccessDenied) as info:
        verify_login(store, "ada", ada.password, ada.code(tomorrow), now=tomorrow)
    assert info.value.rule == "auth.not-accredited"


def test_no_totp_enrolled_or_no_password_is_bad_credentials(store: AccountStore) -> None:
    from sde.accounts import create_user, set_password

    create_user(store, ADMIN, "bob", display_name="Bob", email="b@x.org", organisation="L")
    set_password(store, ADMIN, "bob", "a long enough password")
    for otp in ("123456", ""):
        with pytest.raises(AccessDenied) as info:
            verify_login(store, "bob", "a long enough password", otp, now=NOW)
        assert info.value.rule == BAD


def test_every_attempt_is_audited_without_secrets(store: AccountStore) -> None:
    from sde.audit import AuditLog

    ada = make_user(store, "ada")
    before = AuditLog(store.engine).count()
    _attempt(store, "ghost", "pw-of-ghost-123", "123456", NOW)
    _fail(store, ada, NOW)
    verify_login(store, "ada", ada.password, ada.code(), now=NOW)
    entries = AuditLog(store.engine).entries()[before:]
    assert [(e.action, e.outcome, e.rule) for e in entries] == [
        ("auth.login", "refused", BAD),
        ("auth.login", "refused", BAD),
        ("auth.login", "ok", None),
    ]
    dumped = " ".join(f"{e.details} {e.object} {e.user}" for e in entries)
    assert ada.password not in dumped
    assert ada.code() not in dumped
    assert "pw-of-ghost" not in dumped
    assert AuditLog(store.engine).verify().ok


def test_the_totp_secret_is_encrypted_at_rest(store: AccountStore) -> None:
    ada = make_user(store, "ada")
    with store.engine.connect() as conn:
        row = conn.execute(text("SELECT * FROM users WHERE username = 'ada'")).mappings().one()
    everything = " ".join(str(v) for v in row.values())
    assert ada.totp_secret not in everything
    assert ada.totp_secret.lower() not in everything.lower()
    assert row["totp_secret"].startswith("gAAAAA")  # a Fernet token
    assert store.cipher.decrypt(row["totp_secret"]) == ada.totp_secret


def test_password_hashes_are_argon2id_at_the_default_cost(registry_url: str) -> None:
    store = AccountStore(open_registry(registry_url), secret=SECRET)  # default parameters
    make_user(store, "ada")
    with store.engine.connect() as conn:
        stored = conn.execute(text("SELECT password_hash FROM users")).scalar_one()
    assert stored.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    assert PASSWORD not in stored
    store.engine.dispose()


def test_a_cheaper_hash_is_upgraded_at_the_next_login(store: AccountStore) -> None:
    ada = make_user(store, "ada")  # hashed with the tests' cheap parameters
    default = AccountStore(store.engine, secret=SECRET)
    verify_login(default, "ada", ada.password, ada.code(), now=NOW)
    with store.engine.connect() as conn:
        stored = conn.execute(text("SELECT password_hash FROM users")).scalar_one()
    assert "m=65536,t=3,p=4" in stored
    assert default.passwords.check(stored, ada.password)


def test_another_workbench_secret_cannot_read_the_codes(store: AccountStore) -> None:
    ada = make_user(store, "ada")
    other = AccountStore(store.engine, secret="another secret, also thirty-two characters")  # noqa: S106
    with pytest.raises(ConfigurationError) as info:
        verify_login(other, "ada", ada.password, ada.code(), now=NOW)
    assert info.value.rule == "auth.totp-key"


def test_concurrent_failures_are_all_counted(store: AccountStore) -> None:
    ada = make_user(store, "ada")
    with ThreadPoolExecutor(max_workers=5) as pool:
        rules = list(pool.map(lambda _: _fail(store, ada, NOW), range(MAX_FAILED_LOGINS)))
    assert rules == [BAD] * MAX_FAILED_LOGINS
    user = get_user(store, "ada")
    assert (user.failed_logins, user.locked_until) == (MAX_FAILED_LOGINS, NOW + LOCKOUT)
