"""A real JupyterHub with the workbench's configuration, once per test module.

The fixture makes a registry with the people of :data:`PEOPLE` through the account
services, runs ``sde hub`` (configurable-http-proxy from npm, installed into the cache
folder if missing) as a child process, waits until the hub answers, and at the end stops
it with SIGTERM: it must exit 0 and take its proxy and servers with it. The hub's state lives in a
folder under /tmp that the notebook servers' OS users can traverse (pytest's own tmp
folders are private to root).
"""

from __future__ import annotations

import datetime as dt
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pyotp
import pytest
from argon2 import PasswordHasher, profiles

from jupyter_config.spawner import os_user
from sde.accounts import (
    AccountStore,
    add_member,
    create_project,
    create_user,
    enrol_totp,
    record_accreditation,
    record_daa,
    set_password,
)
from sde.accounts.crypto import Passwords
from sde.cli.hub import ensure_chp, stop_hub
from sde.errors import ConfigurationError
from sde.registry import open_registry
from tests.fixtures.workbench import free_base_port

SECRET = "a test secret of at least thirty-two characters"  # noqa: S105
PASSWORD = "correct horse battery staple"  # noqa: S105
ADMIN = "hub-tests"
NEXT_YEAR = dt.date.today() + dt.timedelta(days=365)

#: name: (roles, accredited, projects). Each test uses its own people, so lockouts and
#: used codes of one test never touch another.
PEOPLE: dict[str, tuple[tuple[str, ...], bool, tuple[str, ...]]] = {
    "ada": (("researcher",), True, ("htn",)),  # spawns a server
    "ben": (("researcher",), True, ("htn", "copd")),  # logs in; picks a project
    "cyd": (("researcher",), True, ()),  # accredited, no project yet
    "dan": (("researcher",), False, ("htn",)),  # accreditation missing
    "eve": (("output-checker",), False, ()),  # staff, no project
    "fay": (("researcher",), True, ("htn",)),  # gets locked
    "gil": (("researcher",), True, ("htn",)),  # wrong password, wrong code
    "hal": (("researcher",), True, ("htn",)),  # replays a code
    "ivy": (("admin",), False, ()),  # the hub's admin
}
PROJECTS = ("htn", "copd")


@dataclass(frozen=True)
class Person:
    name: str
    password: str
    totp: pyotp.TOTP

    def code(self, steps_ahead: int = 0) -> str:
        return self.totp.at(time.time() + 30 * steps_ahead)


@dataclass
class Hub:
    url: str
    root: Path
    store: AccountStore
    people: dict[str, Person]
    log: Path
    spawned: set[str] = field(default_factory=set)

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, follow_redirects=False, timeout=30)

    def login(self, name: str, password: str | None = None, code: str | None = None) -> Login:
        person = self.people[name]
        client = self.client()
        client.get("hub/login").raise_for_status()
        xsrf = client.cookies["_xsrf"]
        answer = client.post(
            "hub/login",
            data={
                "username": name,
                "password": person.password if password is None else password,
                "otp": person.code() if code is None else code,
                "_xsrf": xsrf,
            },
        )
        return Login(client, answer, xsrf)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


@dataclass
class Login:
    client: httpx.Client
    answer: httpx.Response
    xsrf: str

    @property
    def ok(self) -> bool:
        return self.answer.status_code == 302 and "jupyterhub-session-id" in self.client.cookies

    def xsrf_now(self) -> str:
        """The session's XSRF token (the hub sets a new one at login)."""
        tokens = [c.value for c in self.client.cookies.jar if c.name == "_xsrf" and c.value]
        return tokens[-1] if tokens else self.xsrf

    def api(self, method: str, path: str, **kwargs: object) -> httpx.Response:
        """The hub's REST API with the login's cookie (and the session's XSRF token)."""
        headers = {"X-XSRFToken": self.xsrf_now()}
        return self.client.request(method, f"hub/api/{path}", headers=headers, **kwargs)  # type: ignore[arg-type]


def _populate(store: AccountStore) -> dict[str, Person]:
    for slug in PROJECTS:
        scope = {"project": slug, "access": "rows", "tables": {"person": "*"}}
        create_project(store, ADMIN, slug, title=slug.upper(), scope=scope)
    people = {}
    for name, (roles, accredited, projects) in PEOPLE.items():
        create_user(
            store,
            ADMIN,
            name,
            display_name=name.title(),
            email=f"{name}@example.nhs.uk",
            organisation="Lancashire Teaching Hospitals",
            roles=roles,
        )
        set_password(store, ADMIN, name, PASSWORD)
        secret = enrol_totp(store, ADMIN, name).secret
        if accredited:
            record_accreditation(store, ADMIN, name, NEXT_YEAR, "ONS-SRS 2026/1")
        record_daa(store, ADMIN, name, "v3")
        for slug in projects:
            add_member(store, ADMIN, slug, name)
        people[name] = Person(name, PASSWORD, pyotp.TOTP(secret))
    return people


def _wait_up(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"JupyterHub exited ({proc.returncode}):\n{log.read_text()[-4000:]}")
        try:
            if httpx.get(f"{url}hub/api/", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    stop_hub(proc)
    pytest.fail(f"JupyterHub did not answer in {timeout} s:\n{log.read_text()[-4000:]}")


@pytest.fixture(scope="module")
def hub() -> Iterator[Hub]:
    try:
        ensure_chp()
    except ConfigurationError as err:
        pytest.fail(f"JupyterHub's proxy is missing: {err.message} (./workbench test installs it)")
    root = Path(tempfile.mkdtemp(prefix="sde-hub-", dir="/tmp"))
    root.chmod(0o711)
    registry = f"sqlite:///{root / 'registry.sqlite'}"
    cheap = Passwords(PasswordHasher.from_parameters(profiles.CHEAPEST))
    store = AccountStore(open_registry(registry), secret=SECRET, passwords=cheap)
    people = _populate(store)
    (root / "registry.sqlite").chmod(0o644)  # as a default umask leaves it: the hub fixes it
    port = free_base_port(6)
    env = {**os.environ, "SDE_SECRET_KEY": SECRET, "SDE_DEMO": "false"}
    log = root / "jupyterhub.log"
    command = [sys.executable, "-m", "sde.cli", "hub", "--registry", registry]
    command += ["--port", str(port), "--dir", str(root / "hub")]
    with log.open("wb") as sink:  # the launcher itself, as `sde hub` runs
        proc = subprocess.Popen(command, env=env, stdout=sink, stderr=sink)
    url = f"http://127.0.0.1:{port}/"
    _wait_up(url, proc, log)
    state = Hub(url, root, store, people, log)
    try:
        yield state
    finally:
        proxy = int((root / "hub" / "proxy.pid").read_text())
        code = stop_hub(proc)
        store.engine.dispose()
        assert code == 0, f"sde hub exited with {code} on SIGTERM:\n{state.log_text()[-3000:]}"
        assert not Path(f"/proc/{proxy}").exists(), "the proxy outlived the hub"
        for name in state.spawned:
            _drop_os_user(os_user(name))
        shutil.rmtree(root, ignore_errors=True)


def _drop_os_user(name: str) -> None:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return
    subprocess.run(["userdel", name], check=False, capture_output=True)
