"""``sde users`` and ``sde projects`` through the real entry point: output, errors, exit codes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import text

from sde.accounts import AccountStore, verify_login
from sde.accounts.crypto import totp_code, totp_step
from sde.audit import AuditLog
from sde.registry import open_registry
from tests.accounts.conftest import NOW, SECRET

PASSWORD = "a passphrase long enough"  # noqa: S105


def _runner(registry_url: str):  # type: ignore[no-untyped-def]
    env = {**os.environ, "SDE_REGISTRY_URL": registry_url, "SDE_SECRET_KEY": SECRET}
    env.pop("SDE_DEMO", None)

    def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "sde.cli", *args],
            capture_output=True,
            text=True,
            check=False,
            input=stdin,
            env=env,
        )

    return run


@pytest.fixture
def sde_(registry_url: str):  # type: ignore[no-untyped-def]
    """``sde`` on a registry of each kind."""
    return _runner(registry_url)


@pytest.fixture
def sde_sqlite(tmp_path: Path):  # type: ignore[no-untyped-def]
    """``sde`` on a SQLite registry (for what does not depend on the database)."""
    return _runner(f"sqlite:///{tmp_path / 'registry.sqlite'}")


def test_an_administrator_sets_up_a_user_and_a_project(
    sde_, registry_url: str, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    ok = [
        sde_(
            "users",
            "add",
            "ada",
            "--name",
            "Ada L",
            "--email",
            "ada@x.org",
            "--org",
            "LU",
            "--role",
            "researcher",
        ),
        sde_("users", "set-password", "ada", "--password-stdin", stdin=PASSWORD + "\n"),
        sde_("users", "accredit", "ada", "--until", "2030-01-01", "--ref", "SRS-1"),
        sde_("users", "daa", "ada", "--version", "v3"),
    ]
    enrol = sde_("users", "enrol-totp", "ada")
    assert [r.returncode for r in [*ok, enrol]] == [0] * 5, [r.stderr for r in ok]
    secret = enrol.stdout.split("secret: ", 1)[1].split()[0]
    assert "otpauth://totp/" in enrol.stdout
    scope = tmp_path / "htn.yaml"
    scope.write_text("project: htn\naccess: rows\ntables: {person: '*'}\nexpires: 2030-01-01\n")
    for args in (
        ("projects", "add", "htn", "--title", "Hypertension", "--scope", str(scope)),
        ("projects", "members", "add", "htn", "ada", "--pi"),
        ("projects", "scope", "htn", str(scope), "--note", "application:3"),
    ):
        out = sde_(*args)
        assert out.returncode == 0, out.stderr
    assert "version        2" in sde_("projects", "show", "htn").stdout
    listing = sde_("users", "list").stdout + sde_("users", "show", "ada").stdout
    assert secret not in listing
    assert PASSWORD not in listing
    store = AccountStore(open_registry(registry_url), secret=SECRET)
    result = verify_login(
        store, "ada", PASSWORD, totp_code(secret, totp_step(NOW.timestamp())), now=NOW
    )
    assert result.projects == ("htn",)
    with store.engine.connect() as conn:
        raw = " ".join(str(v) for v in conn.execute(text("SELECT * FROM users")).one())
    assert secret not in raw
    assert AuditLog(store.engine).verify().ok


@pytest.mark.parametrize(
    ("args", "rule"),
    [
        (("users", "show", "ghost"), "[user.unknown]"),
        (("users", "roles", "ghost", "admin"), "[user.unknown]"),
        (
            ("users", "add", "Bad Name", "--name", "x", "--email", "x@y.org", "--org", "o"),
            "[user.invalid-name]",
        ),
        (("users", "accredit", "ghost", "--until", "soon"), "[cli.invalid-date]"),
        (("projects", "show", "nope"), "[project.unknown]"),
        (("projects", "suspend", "nope", "--reason", "x"), "[project.unknown]"),
        (("projects", "add", "Bad_Slug", "--title", "t"), "[project.invalid-slug]"),
    ],
)
def test_errors_are_one_line_and_exit_2(sde_sqlite, args: tuple[str, ...], rule: str) -> None:  # type: ignore[no-untyped-def]
    out = sde_sqlite(*args)
    assert out.returncode == 2
    assert out.stderr.startswith(f"error: {rule} ")
    assert out.stderr.count("\n") == 1
    assert "Traceback" not in out.stderr


def test_a_missing_reason_and_a_bad_transition(sde_sqlite) -> None:  # type: ignore[no-untyped-def]
    sde_ = sde_sqlite
    assert sde_("projects", "add", "htn", "--title", "t").returncode == 0
    missing = sde_("projects", "revoke", "htn")
    assert (missing.returncode, "--reason" in missing.stderr) == (2, True)
    assert sde_("projects", "revoke", "htn", "--reason", "breach").returncode == 0
    again = sde_("projects", "reactivate", "htn", "--reason", "appeal")
    assert again.returncode == 2
    assert again.stderr.startswith("error: [project.transition] project htn is revoked")


def test_no_registry_is_a_clear_error(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "SDE_REGISTRY_URL"}
    out = subprocess.run(
        [sys.executable, "-m", "sde.cli", "users", "list"],
        capture_output=True,
        text=True,
        check=False,
        env=env,
        cwd=tmp_path,
    )
    assert out.returncode == 2
    assert out.stderr == "error: [registry.no-url] give --registry URL or set SDE_REGISTRY_URL\n"


def test_enrolling_without_a_real_secret_is_refused(tmp_path: Path) -> None:
    registry_url = f"sqlite:///{tmp_path / 'registry.sqlite'}"
    _runner(registry_url)("users", "add", "ada", "--name", "A", "--email", "a@x.org", "--org", "L")
    env = {**os.environ, "SDE_REGISTRY_URL": registry_url}
    env.pop("SDE_SECRET_KEY", None)
    env.pop("SDE_DEMO", None)
    out = subprocess.run(
        [sys.executable, "-m", "sde.cli", "users", "enrol-totp", "ada"],
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )
    assert out.returncode == 2
    assert out.stderr.startswith("error: [settings.default-secret]")
    assert "secret:" not in out.stdout
