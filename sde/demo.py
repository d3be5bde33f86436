"""The demo workbench's people and projects (what ``sde up`` loads into the registry).

The roster is data (:data:`PEOPLE`, :data:`PROJECTS`) and :func:`load_demo` makes the
registry agree with it: missing users and projects are created, roles, accreditation, the
data access agreement and memberships are set, and a user whose credentials are not
known yet (first run, or ``credentials.json`` lost) gets a new password and TOTP secret.
Users whose credentials are known keep them, so a second ``sde up`` lets everyone log in
with the codes their authenticator app already makes. Every change goes through
:mod:`sde.accounts`, so it is audited like an administrator's.

What API.md asks the demo to hold: a ``rows`` project with two researchers; a ``dp``
project with one researcher who is in no other project; three output checkers, one of
them a researcher of the ``rows`` project; three committee members; a custodian for each
node; an administrator; and an accredited researcher in no project. Besides, an
``aggregates`` project that ada shares with ben, so ada picks a project when her
notebook server starts.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sde.accounts import (
    AccountStore,
    add_member,
    add_version,
    create_project,
    get_project,
    record_accreditation,
    record_daa,
)
from sde.accounts.users import (
    create_user,
    enrol_totp,
    get_user,
    grant_custodian,
    set_password,
    set_roles,
)
from sde.errors import InvalidInput

ACTOR = "sde-up"
DAA_VERSION = "demo-1"

_RESEARCH_TABLES: dict[str, Any] = {
    "person": ["person_id", "gender_concept_id", "year_of_birth", "location_id"],
    "condition_occurrence": ["person_id", "condition_concept_id", "condition_start_date"],
    "measurement": [
        "person_id",
        "measurement_concept_id",
        "measurement_date",
        "value_as_number",
        "unit_concept_id",
    ],
    "observation": ["person_id", "observation_concept_id", "observation_date", "value_as_number"],
    "drug_exposure": ["person_id", "drug_concept_id", "drug_exposure_start_date"],
    "concept": "*",
    "concept_ancestor": "*",
}


@dataclass(frozen=True)
class DemoProject:
    slug: str
    title: str
    access: str
    #: The scope's other keys (tables, period, sdc, dp); project, access, expiry are added.
    scope: Mapping[str, Any]

    def scope_for(self, expires: dt.date) -> dict[str, Any]:
        return {"project": self.slug, "access": self.access, **self.scope, "expires": expires}


PROJECTS: tuple[DemoProject, ...] = (
    DemoProject(
        "htn-deprivation",
        "Hypertension and deprivation in Lancashire and South Cumbria",
        "rows",
        {
            "tables": _RESEARCH_TABLES,
            "period": {"start": "2015-01-01", "end": "2024-12-31"},
            "sdc": {"threshold": 10},
            "dp": {"epsilon": 3.0, "delta": 1.0e-6},
        },
    ),
    DemoProject(
        "copd-inhalers",
        "Inhaler prescribing in COPD (aggregate results only)",
        "aggregates",
        {
            "tables": _RESEARCH_TABLES,
            "period": {"start": "2018-01-01", "end": "2024-12-31"},
            "sdc": {"threshold": 10},
        },
    ),
    DemoProject(
        "af-outcomes",
        "Atrial fibrillation outcomes by deprivation (differentially private)",
        "dp",
        {
            "tables": _RESEARCH_TABLES,
            "period": {"start": "2015-01-01", "end": "2024-12-31"},
            "dp": {"epsilon": 2.0, "delta": 1.0e-6},
        },
    ),
)


@dataclass(frozen=True)
class DemoPerson:
    name: str
    display_name: str
    organisation: str
    roles: tuple[str, ...]
    projects: tuple[str, ...] = ()
    #: Custodian of the node at this index of the demo's nodes.
    node_index: int | None = None
    accredited: bool = True


PEOPLE: tuple[DemoPerson, ...] = (
    DemoPerson(
        "ada",
        "Ada Okafor",
        "Lancaster University",
        ("researcher",),
        ("htn-deprivation", "copd-inhalers"),
    ),
    DemoPerson(
        "ben",
        "Ben Hughes",
        "Lancashire Teaching Hospitals",
        ("researcher", "output-checker"),
        ("htn-deprivation", "copd-inhalers"),
    ),
    DemoPerson(
        "cat", "Cat Nowak", "University of Central Lancashire", ("researcher",), ("af-outcomes",)
    ),
    DemoPerson("tom", "Tom Bell", "Lancaster University", ("researcher",)),
    DemoPerson("olu", "Olu Adeyemi", "LSC Secure Data Environment", ("output-checker",)),
    DemoPerson("pia", "Pia Larsen", "LSC Secure Data Environment", ("output-checker",)),
    DemoPerson("kim", "Kim Patel", "LSC Data Access Committee", ("committee",)),
    DemoPerson("lee", "Lee Shaw", "LSC Data Access Committee", ("committee",)),
    DemoPerson("max", "Max Rahman", "Public contributor", ("committee",), accredited=False),
    DemoPerson("nia", "Nia Evans", "Lancashire Teaching Hospitals", ("custodian",), node_index=0),
    DemoPerson("oli", "Oli Grant", "East Lancashire Hospitals", ("custodian",), node_index=1),
    DemoPerson(
        "pat", "Pat Moss", "University Hospitals of Morecambe Bay", ("custodian",), node_index=2
    ),
    DemoPerson("sam", "Sam Carter", "LSC Secure Data Environment", ("admin",), accredited=False),
)


@dataclass
class DemoUser:
    """One demo user's row of ``credentials.json`` (the token is added once the hub runs)."""

    name: str
    password: str
    totp_secret: str
    roles: list[str]
    projects: list[str]
    nodes: list[str]
    token: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "password": self.password,
            "totp_secret": self.totp_secret,
            "roles": self.roles,
            "projects": self.projects,
            "nodes": self.nodes,
            "token": self.token,
        }


def new_password() -> str:
    """A random password of 20 characters (the accounts need at least 12)."""
    return secrets.token_urlsafe(15)


def load_demo(
    store: AccountStore,
    nodes: Sequence[str],
    known: Mapping[str, Mapping[str, Any]] | None = None,
    *,
    today: dt.date | None = None,
) -> list[DemoUser]:
    """Make the registry hold the demo roster; the users' credentials, in roster order.

    ``known`` maps user names to their previous ``credentials.json`` rows; those users keep
    their password, TOTP secret and token.
    """
    if len(nodes) < 3:
        raise InvalidInput("demo.nodes", f"the demo needs three nodes, the data has {len(nodes)}")
    today = today or dt.date.today()
    expires = today.replace(year=today.year + 1)
    for project in PROJECTS:
        _ensure_project(store, project, expires)
    known = known or {}
    return [
        _ensure_person(store, person, nodes, known.get(person.name), today) for person in PEOPLE
    ]


def _ensure_project(store: AccountStore, project: DemoProject, expires: dt.date) -> None:
    try:
        current = get_project(store, project.slug)
    except InvalidInput:
        create_project(
            store, ACTOR, project.slug, title=project.title, scope=project.scope_for(expires)
        )
        return
    if current.expires is not None and current.expires < expires - dt.timedelta(days=30):
        add_version(store, ACTOR, project.slug, project.scope_for(expires), note="demo renewed")


def _ensure_person(
    store: AccountStore,
    person: DemoPerson,
    nodes: Sequence[str],
    known: Mapping[str, Any] | None,
    today: dt.date,
) -> DemoUser:
    try:
        info = get_user(store, person.name)
    except InvalidInput:
        info = create_user(
            store,
            ACTOR,
            person.name,
            display_name=person.display_name,
            email=f"{person.name}@demo.sde.invalid",
            organisation=person.organisation,
        )
    node = nodes[person.node_index] if person.node_index is not None else None
    if node is not None and node not in info.nodes:
        info = grant_custodian(store, ACTOR, person.name, node)
    if set(info.roles) != set(person.roles):
        set_roles(store, ACTOR, person.name, person.roles)
    if person.accredited and (info.accredited_until is None or info.accredited_until <= today):
        record_accreditation(
            store, ACTOR, person.name, today.replace(year=today.year + 1), ref="demo"
        )
    if info.daa_version != DAA_VERSION:
        record_daa(store, ACTOR, person.name, DAA_VERSION)
    for slug in person.projects:
        if slug not in _members(store, slug):
            add_member(
                store, ACTOR, slug, person.name, role="pi" if person.name == "ada" else "member"
            )
    password, secret, token = _credentials(store, person.name, info.has_totp, known)
    return DemoUser(
        name=person.name,
        password=password,
        totp_secret=secret,
        roles=sorted(person.roles),
        projects=list(person.projects),
        nodes=[node] if node else [],
        token=token,
    )


def _members(store: AccountStore, slug: str) -> frozenset[str]:
    return get_project(store, slug).member_names()


def _credentials(
    store: AccountStore, name: str, has_totp: bool, known: Mapping[str, Any] | None
) -> tuple[str, str, str | None]:
    """The user's password, TOTP secret and token: the known ones, else new ones."""
    if known and has_totp and known.get("password") and known.get("totp_secret"):
        token = known.get("token")
        return str(known["password"]), str(known["totp_secret"]), str(token) if token else None
    password = new_password()
    set_password(store, ACTOR, name, password)
    return password, enrol_totp(store, ACTOR, name).secret, None
