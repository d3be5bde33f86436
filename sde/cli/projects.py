"""``sde projects ...``: the administrator's commands for projects (until the web pages exist).

A project's scope comes from a scope file (``sde projects scope SLUG FILE`` approves it as
the next version); status changes need ``--reason`` and are audited.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Annotated

import typer

from sde.accounts import ProjectInfo
from sde.accounts import projects as svc
from sde.cli.users import ActorOption, JsonOption, RegistryOption, actor_of, open_store

projects_app = typer.Typer(help="Projects: scope versions, status, members.", no_args_is_help=True)
members_app = typer.Typer(help="Who works on a project.", no_args_is_help=True)
projects_app.add_typer(members_app, name="members")

Slug = Annotated[str, typer.Argument(help="The project's slug.")]
Reason = Annotated[str, typer.Option("--reason", help="Why (recorded in the audit log).")]
Note = Annotated[
    str | None, typer.Option("--note", help="Where the approval came from (application:3).")
]


@projects_app.command("add")
def add(
    slug: Slug,
    title: Annotated[str, typer.Option("--title", help="The project's title.")],
    scope: Annotated[
        Path | None, typer.Option("--scope", help="Scope file (YAML): approval version 1.")
    ] = None,
    note: Note = None,
    registry: RegistryOption = None,
    actor: ActorOption = None,
) -> None:
    """Create an active project, with its first scope if given."""
    project = svc.create_project(
        open_store(registry), actor_of(actor), slug, title=title, scope=scope, note=note
    )
    typer.echo(f"project {project.slug} created ({_version(project)})")


@projects_app.command("list")
def list_(registry: RegistryOption = None, as_json: JsonOption = False) -> None:
    """Every project: status in force, access, version, expiry, members."""
    today = dt.date.today()
    projects = svc.list_projects(open_store(registry))
    if as_json:
        typer.echo(json.dumps([p.to_dict(today) for p in projects], indent=2))
        return
    for p in projects:
        typer.echo(
            f"{p.slug:<24} {p.effective_status(today):<10} {p.access or '-':<11} "
            f"{_version(p):<11} expires {p.expires or '-'}  {len(p.members)} member(s)"
        )


@projects_app.command("show")
def show(
    slug: Slug,
    scope: Annotated[bool, typer.Option("--scope", help="Print the current scope too.")] = False,
    registry: RegistryOption = None,
    as_json: JsonOption = False,
) -> None:
    """One project: status, version, members (and its scope with --scope)."""
    store = open_store(registry)
    data = svc.get_project(store, slug).to_dict(dt.date.today())
    if scope:
        data["scope"] = svc.scope_of(store, slug)[1].to_dict()
    if as_json:
        typer.echo(json.dumps(data, indent=2))
        return
    if "members" in data:
        data["members"] = ", ".join(f"{m['user']} ({m['role']})" for m in data["members"])
    if "scope" in data:
        data["scope"] = json.dumps(data["scope"], indent=2)
    for key, value in data.items():
        typer.echo(f"{key:<14} {'-' if value in (None, '') else value}")


@projects_app.command("scope")
def scope(
    slug: Slug,
    file: Annotated[Path, typer.Argument(help="The scope file (YAML) to approve.")],
    note: Note = None,
    registry: RegistryOption = None,
    actor: ActorOption = None,
) -> None:
    """Approve a scope file as the project's next version (takes effect at once)."""
    project = svc.add_version(open_store(registry), actor_of(actor), slug, file, note=note)
    typer.echo(f"project {slug} now at {_version(project)}")


def _status_command(action: str) -> None:
    def command(
        slug: Slug, reason: Reason, registry: RegistryOption = None, actor: ActorOption = None
    ) -> None:
        project = svc.change_status(open_store(registry), actor_of(actor), slug, action, reason)
        typer.echo(f"project {slug} is {project.status}")

    command.__doc__ = f"{action.capitalize()} the project (with a reason)."
    projects_app.command(action)(command)


for _action in svc.TRANSITIONS:
    _status_command(_action)


@members_app.command("add")
def member_add(
    slug: Slug,
    username: Annotated[str, typer.Argument(help="The researcher to add.")],
    pi: Annotated[bool, typer.Option("--pi", help="As the principal investigator.")] = False,
    registry: RegistryOption = None,
    actor: ActorOption = None,
) -> None:
    """Add a researcher to the project."""
    role = "pi" if pi else "member"
    svc.add_member(open_store(registry), actor_of(actor), slug, username, role=role)
    typer.echo(f"{username} is a {role} of {slug}")


@members_app.command("remove")
def member_remove(
    slug: Slug,
    username: Annotated[str, typer.Argument(help="The member to remove.")],
    registry: RegistryOption = None,
    actor: ActorOption = None,
) -> None:
    """Remove a member from the project."""
    svc.remove_member(open_store(registry), actor_of(actor), slug, username)
    typer.echo(f"{username} removed from {slug}")


def _version(project: ProjectInfo) -> str:
    return f"version {project.version}" if project.version else "no scope yet"


def register(app: typer.Typer) -> None:
    app.add_typer(projects_app, name="projects")
