"""``sde users ...``: the administrator's commands for people (until the web pages exist).

Every change is audited with the actor ``cli:<OS user>`` (or ``--as NAME``). Secrets are
never printed, except a new TOTP secret by ``enrol-totp``, once, for the user to scan.
"""

from __future__ import annotations

import datetime as dt
import getpass
import json
import sys
from typing import Annotated

import typer

from sde.accounts import AccountStore, UserInfo
from sde.accounts import users as svc
from sde.errors import ConfigurationError, InvalidInput
from sde.settings import get_settings

users_app = typer.Typer(
    help="People: accounts, roles, accreditation, secrets.", no_args_is_help=True
)

RegistryOption = Annotated[
    str | None,
    typer.Option("--registry", help="SQLAlchemy URL of the registry (default SDE_REGISTRY_URL)."),
]
ActorOption = Annotated[
    str | None,
    typer.Option("--as", help="Who makes the change, for the audit log (default cli:<OS user>)."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]
User = Annotated[str, typer.Argument(help="The username.")]


def open_store(registry: str | None) -> AccountStore:
    """The registry named by ``--registry`` or ``SDE_REGISTRY_URL``."""
    url = registry or get_settings().registry_url
    if not url:
        raise ConfigurationError("registry.no-url", "give --registry URL or set SDE_REGISTRY_URL")
    return AccountStore.open(url)


def actor_of(name: str | None) -> str:
    return name or f"cli:{getpass.getuser()}"


def parse_date(text: str, option: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise InvalidInput(
            "cli.invalid-date", f"{option}: {text!r} is not a date (YYYY-MM-DD)"
        ) from None


@users_app.command("add")
def add(
    username: User,
    name: Annotated[str, typer.Option("--name", help="Display name.")],
    email: Annotated[str, typer.Option("--email", help="Email address.")],
    org: Annotated[str, typer.Option("--org", help="Organisation.")],
    role: Annotated[list[str] | None, typer.Option("--role", help="A role (repeatable).")] = None,
    registry: RegistryOption = None,
    actor: ActorOption = None,
) -> None:
    """Create a user (then: set-password, enrol-totp, accredit)."""
    user = svc.create_user(
        open_store(registry),
        actor_of(actor),
        username,
        display_name=name,
        email=email,
        organisation=org,
        roles=role or (),
    )
    typer.echo(f"user {user.username} created ({_roles(user)})")


@users_app.command("edit")
def edit(
    username: User,
    name: Annotated[str | None, typer.Option("--name", help="Display name.")] = None,
    email: Annotated[str | None, typer.Option("--email", help="Email address.")] = None,
    org: Annotated[str | None, typer.Option("--org", help="Organisation.")] = None,
    registry: RegistryOption = None,
    actor: ActorOption = None,
) -> None:
    """Change a user's name, email or organisation."""
    store = open_store(registry)
    user = svc.update_user(
        store, actor_of(actor), username, display_name=name, email=email, organisation=org
    )
    typer.echo(f"user {user.username} updated")


@users_app.command("list")
def list_(registry: RegistryOption = None, as_json: JsonOption = False) -> None:
    """Every user, one a line: name, roles, accreditation, lock."""
    users = svc.list_users(open_store(registry))
    if as_json:
        typer.echo(json.dumps([u.to_dict() for u in users], indent=2))
        return
    today = dt.date.today()
    for u in users:
        accredited = f"accredited to {u.accredited_until}" if u.accredited_until else "-"
        if u.accredited_until and not u.is_accredited(today):
            accredited = f"accreditation expired {u.accredited_until}"
        locked = "  LOCKED" if u.is_locked(dt.datetime.now(dt.UTC)) else ""
        typer.echo(f"{u.username:<20} {_roles(u):<40} {accredited}{locked}")


@users_app.command("show")
def show(username: User, registry: RegistryOption = None, as_json: JsonOption = False) -> None:
    """One user's details (never their secrets)."""
    user = svc.get_user(open_store(registry), username)
    if as_json:
        typer.echo(json.dumps(user.to_dict(), indent=2))
        return
    for key, value in user.to_dict().items():
        shown = ", ".join(value) if isinstance(value, list) else value
        typer.echo(f"{key:<18} {'-' if shown in (None, '') else shown}")


@users_app.command("set-password")
def set_password(
    username: User,
    stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
    registry: RegistryOption = None,
    actor: ActorOption = None,
) -> None:
    """Set a password (asked for twice, not echoed; or one line on standard input)."""
    if stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = typer.prompt("new password", hide_input=True, confirmation_prompt=True)
    svc.set_password(open_store(registry), actor_of(actor), username, password)
    typer.echo(f"password of {username} set")


@users_app.command("enrol-totp")
def enrol_totp(username: User, registry: RegistryOption = None, actor: ActorOption = None) -> None:
    """Give the user a new TOTP secret; print it and its otpauth:// URI once."""
    enrolment = svc.enrol_totp(open_store(registry), actor_of(actor), username)
    typer.echo(f"TOTP enrolled for {username}; give these to them, they are not shown again:")
    typer.echo(f"secret: {enrolment.secret}")
    typer.echo(f"uri:    {enrolment.uri}")


@users_app.command("roles")
def roles(
    username: User,
    role: Annotated[
        list[str] | None, typer.Argument(help="The roles to hold (replacing the others).")
    ] = None,
    registry: RegistryOption = None,
    actor: ActorOption = None,
) -> None:
    """Show a user's roles, or set them (custodian: see `sde users custodian`)."""
    store = open_store(registry)
    if role:
        user = svc.set_roles(store, actor_of(actor), username, role)
    else:
        user = svc.get_user(store, username)
    typer.echo(f"{user.username}: {_roles(user)}")


@users_app.command("accredit")
def accredit(
    username: User,
    until: Annotated[str, typer.Option("--until", help="Last day it is valid (YYYY-MM-DD).")],
    ref: Annotated[str | None, typer.Option("--ref", help="The accreditation's reference.")] = None,
    registry: RegistryOption = None,
    actor: ActorOption = None,
) -> None:
    """Record safe-researcher accreditation (a past date ends it)."""
    day = parse_date(until, "--until")
    svc.record_accreditation(open_store(registry), actor_of(actor), username, day, ref)
    typer.echo(f"{username} accredited until {day}")


@users_app.command("daa")
def daa(
    username: User,
    version: Annotated[str, typer.Option("--version", help="Version of the agreement signed.")],
    registry: RegistryOption = None,
    actor: ActorOption = None,
) -> None:
    """Record that the user signed the data access agreement."""
    svc.record_daa(open_store(registry), actor_of(actor), username, version)
    typer.echo(f"{username} signed data access agreement {version}")


@users_app.command("unlock")
def unlock(username: User, registry: RegistryOption = None, actor: ActorOption = None) -> None:
    """Lift a failed-login lock."""
    svc.unlock(open_store(registry), actor_of(actor), username)
    typer.echo(f"{username} unlocked")


@users_app.command("custodian")
def custodian(
    username: User,
    grant: Annotated[list[str] | None, typer.Option("--grant", help="Node to add.")] = None,
    revoke: Annotated[list[str] | None, typer.Option("--revoke", help="Node to take.")] = None,
    registry: RegistryOption = None,
    actor: ActorOption = None,
) -> None:
    """Grant or revoke custodianship of nodes (the custodian role follows)."""
    store = open_store(registry)
    who = actor_of(actor)
    user = svc.get_user(store, username)
    for node in grant or ():
        user = svc.grant_custodian(store, who, username, node)
    for node in revoke or ():
        user = svc.revoke_custodian(store, who, username, node)
    typer.echo(f"{username} is custodian of: {', '.join(sorted(user.nodes)) or 'no node'}")


def _roles(user: UserInfo) -> str:
    roles = sorted(user.roles)
    if user.nodes:
        roles = [
            f"custodian[{','.join(sorted(user.nodes))}]" if r == "custodian" else r for r in roles
        ]
    return ", ".join(roles) or "no role"


def register(app: typer.Typer) -> None:
    app.add_typer(users_app, name="users")
