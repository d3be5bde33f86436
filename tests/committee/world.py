"""A registry with the committee's people; applications taken to any state for real.

People: ``ada`` (applicant, accredited researcher), ``ben`` (researcher she names as a
member), ``kim``, ``lee``, ``max`` and ``nat`` (committee), ``nia``/``oli``/``pat``
(custodians of ``lth``/``elht``/``umbh``), ``sam`` (admin), ``tom`` (accredited researcher
with no part in the application), ``una`` (researcher without accreditation).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher, profiles

from access_committee.applications import Committee
from access_committee.workflow import Relation, State
from sde.accounts import AccountStore, record_accreditation, record_daa
from sde.accounts.crypto import Passwords
from sde.accounts.users import create_user, grant_custodian
from sde.registry import open_registry

SECRET = "a test secret of at least thirty-two characters"  # noqa: S105
NODES = ("lth", "elht", "umbh")
NEXT_YEAR = dt.date.today() + dt.timedelta(days=365)

PEOPLE: dict[str, tuple[tuple[str, ...], bool]] = {
    "ada": (("researcher",), True),
    "ben": (("researcher",), True),
    "kim": (("committee",), False),
    "lee": (("committee",), False),
    "max": (("committee",), False),
    "nat": (("committee",), False),
    "nia": ((), False),
    "oli": ((), False),
    "pat": ((), False),
    "sam": (("admin",), False),
    "tom": (("researcher",), True),
    "una": (("researcher",), False),
}
CUSTODIANS = {"lth": "nia", "elht": "oli", "umbh": "pat"}
ACTOR: dict[Relation, str] = {
    Relation.APPLICANT: "ada",
    Relation.MEMBER: "ben",
    Relation.COMMITTEE: "lee",
    Relation.CUSTODIAN: "nia",
    Relation.ADMIN: "sam",
    Relation.OTHER: "tom",
}


def fields(project: str = "copd-outcomes", **changes: Any) -> dict[str, Any]:
    """A complete, valid application."""
    return {
        "project": project,
        "title": "COPD outcomes by deprivation",
        "lay_summary": "Do people in poorer areas with COPD do worse?",
        "purpose": "Describe admissions by IMD decile",
        "public_benefit": "Targets pulmonary rehabilitation",
        "pi": "ada",
        "members": ["ben"],
        "access": "aggregates",
        "tables": {"person": ["person_id", "year_of_birth"], "condition_occurrence": "*"},
        "cohort": {"any_condition": [255573]},
        "period": {"start": "2018-01-01", "end": "2024-12-31"},
        "nodes": list(NODES),
        "legal_basis": "GDPR 6(1)(e), 9(2)(j)",
        "ethics_ref": "REC 24/NW/0001",
        "expires": NEXT_YEAR.isoformat(),
        **changes,
    }


@dataclass
class World:
    store: AccountStore
    committee: Committee
    serial: int = 0

    def submitted(self, **changes: Any) -> int:
        self.serial += 1
        app = self.committee.create("ada", fields(f"proj-{self.serial}", **changes))
        self.committee.submit("ada", app["id"])
        return int(app["id"])

    def approve(
        self, app_id: int, *, conditions: str | None = None, decline: str = ""
    ) -> dict[str, Any]:
        for node, custodian in CUSTODIANS.items():
            agree = node != decline
            self.committee.node_decision(
                custodian, app_id, node, agree=agree, reason="" if agree else "capacity"
            )
        view: dict[str, Any] = {}
        for member in ("kim", "lee", "max"):
            self.committee.declare(member, app_id, conflict=False)
            vote = "approve_with_conditions" if conditions else "approve"
            view = self.committee.vote(member, app_id, vote, conditions=conditions)
        return view

    def reach(self, state: State) -> int:
        if state is State.DRAFT:
            self.serial += 1
            return int(self.committee.create("ada", fields(f"proj-{self.serial}"))["id"])
        app_id = self.submitted()
        if state is State.SUBMITTED:
            return app_id
        if state is State.WITHDRAWN:
            self.committee.withdraw("ada", app_id)
            return app_id
        self.committee.declare("kim", app_id, conflict=False)
        if state is State.UNDER_REVIEW:
            return app_id
        if state is State.APPROVED:
            self.approve(app_id)
        elif state is State.APPROVED_WITH_CONDITIONS:
            self.approve(app_id, conditions="Report results to the patient panel")
        else:
            vote = {State.DEFERRED: "defer", State.REJECTED: "reject"}[state]
            for member in ("kim", "lee", "max"):
                self.committee.declare(member, app_id, conflict=False)
                self.committee.vote(member, app_id, vote)
        return app_id


def make_world(root: Path, registry: str | None = None) -> World:
    store = AccountStore(
        open_registry(registry or f"sqlite:///{root / 'registry.sqlite'}"),
        secret=SECRET,
        passwords=Passwords(PasswordHasher.from_parameters(profiles.CHEAPEST)),
    )
    for name, (roles, accredited) in PEOPLE.items():
        create_user(
            store,
            "tests",
            name,
            display_name=name.title(),
            email=f"{name}@example.org",
            organisation="Tests",
            roles=roles,
        )
        if accredited:
            record_accreditation(store, "tests", name, NEXT_YEAR)
            record_daa(store, "tests", name, "v1")
    for node, custodian in CUSTODIANS.items():
        grant_custodian(store, "tests", custodian, node)
    return World(store, Committee(store, quorum=3))
