"""A registry with a project, its people and an airlock; requests brought to any state
through the real workflow (never by writing rows).

People: ``ada`` (the author, a member of ``htn``), ``ben`` (a member and an output
checker, so never a reviewer of ``htn``), ``olu``, ``pia`` and ``raj`` (output checkers),
``kim`` (committee), ``sam`` (admin), ``tom`` (a researcher outside the project).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from argon2 import PasswordHasher, profiles

from airlock.files import FileStore
from airlock.requests import Airlock
from airlock.workflow import Relation, State
from sde.accounts import AccountStore, add_member, create_project, record_accreditation, record_daa
from sde.accounts.crypto import Passwords
from sde.accounts.users import create_user
from sde.registry import open_registry

SECRET = "a test secret of at least thirty-two characters"  # noqa: S105
PROJECT = "htn"
TABLE = b"decile,persons\n1,120\n2,135\n3,150\n"
FIGURE = b"\x89PNG\r\n\x1a\n" + bytes(64)
TYPES = ("csv", "parquet", "xlsx", "png", "svg", "pdf", "txt", "md", "json", "html")

PEOPLE: dict[str, tuple[str, ...]] = {
    "ada": ("researcher",),
    "ben": ("researcher", "output-checker"),
    "olu": ("output-checker",),
    "pia": ("output-checker",),
    "raj": ("output-checker",),
    "kim": ("committee",),
    "sam": ("admin",),
    "tom": ("researcher",),
}
#: Who plays each relation in the truth table.
ACTOR: dict[Relation, str] = {
    Relation.AUTHOR: "ada",
    Relation.MEMBER: "ben",
    Relation.CHECKER: "raj",
    Relation.COMMITTEE: "kim",
    Relation.ADMIN: "sam",
    Relation.OTHER: "tom",
}


_REVIEWED = ("submit", "review1", "review2")
#: The steps from a draft to each state.
PATHS: dict[State, tuple[str, ...]] = {
    State.DRAFT: (),
    State.SUBMITTED: ("submit",),
    State.PARTIALLY_REVIEWED: ("submit", "review1"),
    State.REVIEWED: _REVIEWED,
    State.RETURNED: (*_REVIEWED, "return"),
    State.WITHDRAWN: (*_REVIEWED, "return", "withdraw"),
    State.REJECTED: (*_REVIEWED, "reject"),
    State.APPROVED: (*_REVIEWED, "cut_short"),
    State.RELEASED: (*_REVIEWED, "release"),
}


class ReleaseCutShort(Exception):
    """The differencing ledger failed mid-release (to leave a request ``approved``)."""


@dataclass
class World:
    store: AccountStore
    airlock: Airlock
    fail_next_release: bool = False

    def _on_release(self, project: str, request_id: int, files: list[tuple[str, bytes]]) -> None:
        if self.fail_next_release:
            self.fail_next_release = False
            raise ReleaseCutShort

    def draft(self, author: str = "ada") -> int:
        request = self.airlock.create(author, PROJECT)
        self.airlock.add_file(author, request["id"], "tables", "by-decile.csv", TABLE)
        self.airlock.add_file(author, request["id"], "tables", "figure.png", FIGURE)
        self.airlock.add_file(
            author, request["id"], "tables", "notes.txt", b"how it was made", kind="supporting"
        )
        self.airlock.edit_group(
            author,
            request["id"],
            "tables",
            context="Persons with hypertension by IMD decile",
            controls="Counts below 10 suppressed; rounded to 5",
        )
        return int(request["id"])

    def vote_all(self, checker: str, request_id: int, vote: str = "approve") -> None:
        for name in ("by-decile.csv", "figure.png"):
            self.airlock.vote(checker, request_id, "tables", name, vote)

    def reach(self, state: State) -> int:
        """A new request of ada's in ``state`` (withdrawing or finishing any open one)."""
        self._close_open()
        rid = self.draft()
        for step in PATHS[state]:
            getattr(self, f"_step_{step}")(rid)
        return rid

    def _step_submit(self, rid: int) -> None:
        self.airlock.submit("ada", rid)

    def _step_review1(self, rid: int) -> None:
        self.vote_all("olu", rid)
        self.airlock.review("olu", rid)

    def _step_review2(self, rid: int) -> None:
        self.vote_all("pia", rid)
        self.airlock.review("pia", rid)

    def _step_return(self, rid: int) -> None:
        self.airlock.return_request("olu", rid, "Please round the counts to 5.")

    def _step_withdraw(self, rid: int) -> None:
        self.airlock.withdraw("ada", rid)

    def _step_reject(self, rid: int) -> None:
        self.airlock.reject("olu", rid, "This cannot leave: the cells are too small.")

    def _step_release(self, rid: int) -> None:
        self.airlock.release("olu", rid)

    def _step_cut_short(self, rid: int) -> None:
        self.fail_next_release = True
        try:
            self.airlock.release("olu", rid)
        except ReleaseCutShort:
            return
        raise AssertionError("the release was not cut short")

    def _close_open(self) -> None:
        for summary in self.airlock.list_for("ada"):
            state = State(summary["state"])
            if state in (State.DRAFT, State.RETURNED):
                self.airlock.withdraw("ada", summary["id"])
            elif state is State.SUBMITTED:
                self.airlock.return_request("olu", summary["id"], "closing")
                self.airlock.withdraw("ada", summary["id"])
            elif state is State.PARTIALLY_REVIEWED:
                self.vote_all("pia", summary["id"])
                self.airlock.review("pia", summary["id"])
                self.airlock.reject("olu", summary["id"], "closing")
            elif state is State.REVIEWED:
                self.airlock.reject("olu", summary["id"], "closing")
            elif state is State.APPROVED:
                self.airlock.release("olu", summary["id"])


def make_world(root: Path, registry: str | None = None) -> World:
    world = make_world_on(root, registry)
    _populate(world.store)
    return world


def make_world_on(root: Path, registry: str | None = None) -> World:
    """The airlock on ``root``'s registry and files as they are (another process's view)."""
    store = AccountStore(
        open_registry(registry or f"sqlite:///{root / 'registry.sqlite'}"),
        secret=SECRET,
        passwords=Passwords(PasswordHasher.from_parameters(profiles.CHEAPEST)),
    )
    world = World(store, None)  # type: ignore[arg-type]
    world.airlock = Airlock(
        store,
        FileStore(root / "files"),
        file_types=TYPES,
        max_file_mb=1,
        on_release=world._on_release,
    )
    return world


def _populate(store: AccountStore) -> None:
    next_year = dt.date.today() + dt.timedelta(days=365)
    for name, roles in PEOPLE.items():
        create_user(
            store,
            "tests",
            name,
            display_name=name.title(),
            email=f"{name}@example.org",
            organisation="Tests",
            roles=roles,
        )
        record_accreditation(store, "tests", name, next_year)
        if "researcher" in roles:
            record_daa(store, "tests", name, "v1")
    create_project(
        store,
        "tests",
        PROJECT,
        title="Hypertension",
        scope={
            "project": PROJECT,
            "access": "rows",
            "tables": {"person": "*"},
            "sdc": {"threshold": 10},
            "expires": next_year.isoformat(),
        },
    )
    for member in ("ada", "ben"):
        add_member(store, "tests", PROJECT, member)
