"""``DIR/credentials.json`` of ``sde up`` (API.md's shape), and the users shown in the terminal.

The file holds passwords, TOTP secrets and tokens, so it is written with mode 0600 (made
private before anything is written into it) and replaced atomically.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from sde.accounts.crypto import totp_uri
from sde.demo import PROJECTS, DemoUser
from sde.errors import InvalidInput
from sde.settings import SERVICES


def read_known(path: Path) -> dict[str, dict[str, Any]]:
    """The users of an earlier ``credentials.json`` by name (empty if there is none)."""
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
        return {str(u["name"]): dict(u) for u in data["users"]}
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise InvalidInput(
            "up.credentials",
            f"{path} is not a credentials file of sde up ({err}); move it away to start afresh",
        ) from None


def credentials(url: str, nodes: Sequence[str], users: Sequence[DemoUser]) -> dict[str, Any]:
    return {
        "url": url,
        "services": {name: f"{url}services/{name}/" for name in SERVICES},
        "nodes": list(nodes),
        "projects": [{"project": p.slug, "access": p.access} for p in PROJECTS],
        "users": [user.as_json() for user in users],
    }


def write_private_json(path: Path, data: Mapping[str, Any]) -> None:
    """Write ``data`` to ``path`` readable by its owner only, replacing it atomically."""
    partial = path.with_name(f".{path.name}.partial")
    partial.unlink(missing_ok=True)
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(data, out, indent=2)
        out.write("\n")
    os.replace(partial, path)


def show_users(console: Console, users: Sequence[DemoUser], *, qr: bool = True) -> None:
    """The demo users as a table (secrets as text), then each TOTP secret as a QR code."""
    table = Table(title="[bold]Demo users[/] (also in credentials.json)", title_justify="left")
    for column in ("user", "password", "TOTP secret"):
        table.add_column(column, no_wrap=True)  # never cut: people copy them
    for column in ("roles", "projects / nodes"):
        table.add_column(column)
    for user in users:
        where = ", ".join(user.projects + [f"node {n}" for n in user.nodes]) or "-"
        table.add_row(user.name, user.password, user.totp_secret, ", ".join(user.roles), where)
    console.print(table)
    if not qr:
        return
    console.print("Scan a user's code with an authenticator app to log in as them:")
    for user in users:
        console.print(f"[bold]{user.name}[/] ({', '.join(user.roles)})")
        console.print(qr_text(totp_uri(user.totp_secret, user.name)), highlight=False)


def qr_text(data: str) -> str:
    """``data`` as a QR code drawn with half blocks (two modules per character)."""
    import qrcode

    code = qrcode.QRCode(border=1, error_correction=qrcode.constants.ERROR_CORRECT_L)
    code.add_data(data)
    out = io.StringIO()
    code.print_ascii(out=out, invert=True)
    return out.getvalue().rstrip("\n")
