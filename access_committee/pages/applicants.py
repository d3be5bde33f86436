"""Applicants' pages: my applications, the application form (new, edit, amend), and
submitting or withdrawing from an application's page.

The form POSTs its every field; ``action`` says what to do: ``save`` (a draft: create or
update), ``submit`` (save, then submit) or ``search`` (look the cohort up in the
vocabulary and show the form again, nothing saved). Each calls the same
:class:`~access_committee.applications.Committee` method as the JSON API, and a refusal
shows the form again with every value as typed, each problem beside its field and in the
error summary.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import select

from access_committee.pages import vocabulary
from access_committee.pages.base import (
    Form,
    Page,
    application_id,
    confirmations,
    get_page,
    post_page,
    problems_by_field,
)
from access_committee.pages.form import SDC_FIELDS, Typed, typed_from_body, typed_from_form
from access_committee.workflow import Action, Relation, State, check_can
from sde.accounts import get_user
from sde.errors import AccessDenied, InvalidInput, SDEError
from sde.gateway.errors import status_of
from sde.omop.cdm import CDM
from sde.registry.people import NodeCustodian
from sde.scope import UNSCOPABLE_TABLES, withheld_columns

router = APIRouter(include_in_schema=False)

confirmations(
    saved="Your draft was saved.",
    submitted="Your application was submitted: it is with the committee and the custodians.",
    withdrawn="The application was withdrawn.",
    amendment="A draft amendment was made from the project as approved: change what you need.",
)
#: The project's texts: (field, label, hint, textarea rows; 0 for one line).
TEXTS = (
    ("title", "Title", "A short title people will recognise.", 0),
    ("lay_summary", "Lay summary", "What the project does, for a member of the public.", 4),
    ("purpose", "Purpose", "The questions the project answers and how.", 4),
    ("public_benefit", "Public benefit", "Who benefits from the results, and how.", 3),
)
GOVERNANCE = (
    ("legal_basis", "Legal basis", "E.g. GDPR 6(1)(e) and 9(2)(j); section 251 support.", 0),
    ("ethics_ref", "Ethics reference", "The research ethics committee's reference.", 0),
)


def catalogue(typed: Typed) -> list[dict[str, Any]]:
    """Every table a project may ask for, each column ticked as typed (withheld ones not
    available), and any table or column typed that the CDM does not have."""
    found = []
    for name, table in CDM.tables().items():
        if name in UNSCOPABLE_TABLES:
            continue
        ticked = typed.tables.get(name, [])
        hidden = withheld_columns(name)
        columns = [
            {"name": c, "withheld": c in hidden, "ticked": c in ticked, "unknown": False}
            for c in table.column_names
        ]
        columns += [
            {"name": c, "withheld": False, "ticked": True, "unknown": True}
            for c in ticked
            if c not in table.column_names
        ]
        found.append({"name": name, "columns": columns, "ticked": len(ticked)})
    for name, cols in typed.tables.items():
        if not CDM.has_table(name) or name in UNSCOPABLE_TABLES:
            columns = [
                {"name": c, "withheld": False, "ticked": True, "unknown": True} for c in cols
            ]
            found.append({"name": name, "columns": columns, "ticked": len(cols)})
    return found


def known_nodes(page: Page) -> list[str]:
    with page.committee.store.read() as session:
        return sorted(set(session.scalars(select(NodeCustodian.node))))


def node_choices(page: Page, typed: Typed) -> list[dict[str, Any]]:
    known = known_nodes(page)
    choices = [{"name": n, "ticked": n in typed.nodes, "unknown": False} for n in known]
    extra = [n for n in dict.fromkeys(typed.nodes) if n not in known]
    return choices + [{"name": n, "ticked": True, "unknown": True} for n in extra]


def problems_of(err: SDEError) -> list[dict[str, str]]:
    """The per-field problems a refusal carries (all of them, or its one field)."""
    listed = err.details.get("problems")
    if isinstance(listed, list) and listed:
        return [{"field": str(p["field"]), "message": str(p["message"])} for p in listed]
    if err.details.get("field"):
        return [{"field": str(err.details["field"]), "message": err.message}]
    return []


def form_page(
    page: Page,
    typed: Typed,
    app: dict[str, Any] | None = None,
    *,
    error: SDEError | None = None,
    problems: list[dict[str, str]] | None = None,
    saved: bool = False,
) -> Response:
    """The application form, as typed; a refusal's problems beside their fields."""
    listed = problems if problems is not None else (app or {}).get("problems", [])
    q = typed.get("q")
    return page.render(
        "application_form.html",
        status_of(error) if error else 200,
        typed=typed,
        app=app,
        error=None if listed and error else error,  # the summary says it, with the rule
        rule=error.rule if error else None,
        refused=error is not None,
        saved_not_submitted=saved,
        problems=listed,
        by_field=problems_by_field(listed),
        action=page.url("applications", app["id"]) if app else page.url("applications"),
        catalogue=catalogue(typed),
        node_choices=node_choices(page, typed),
        cohort=vocabulary.trees(typed.cohort),
        texts=TEXTS,
        governance=GOVERNANCE,
        sdc_fields=SDC_FIELDS,
        q=q,
        results=vocabulary.results(q),
        picked=set(typed.cohort),
        searched=bool(q.strip()),
        pickable=True,
    )


# -- routes --------------------------------------------------------------------------------


def _new(page: Page) -> Response:
    info = get_user(page.committee.store, page.user)
    if not info.is_accredited(page.committee.now().date()):
        raise AccessDenied(
            "committee.not-accredited",
            "only researchers with current safe-researcher accreditation may apply; "
            "ask the SDE's administrators about accreditation",
        )
    return form_page(page, Typed(text={"pi": page.user, "access": "aggregates"}))


@router.get("/applications/new")
async def new(request: Request) -> Response:
    return await get_page(request, _new)


def _save(page: Page, form: Form, app_id: int | None) -> str | Response:
    """Save (create or update), then submit if asked; or show the vocabulary search."""
    typed = typed_from_form(form)
    action = form.get("action", "save")
    if action == "search":  # nothing saved; what the form cannot say is said all the same
        app = page.committee.get(page.user, app_id) if app_id else None
        try:
            typed.fields()
        except InvalidInput as err:
            return form_page(page, typed, app, error=err, problems=problems_of(err))
        return form_page(page, typed, app, problems=[])
    fields = typed.fields()
    if app_id is None:
        app_id = int(page.committee.create(page.user, fields)["id"])
    else:
        page.committee.update(page.user, app_id, fields)
    if action != "submit":
        return page.url("applications", app_id, "edit", done="saved")
    try:
        page.committee.submit(page.user, app_id)
    except SDEError as err:  # saved, not submitted: the form again with its problems
        return form_page(page, typed, page.committee.get(page.user, app_id), error=err,
                         problems=problems_of(err), saved=True)  # fmt: skip
    return page.url("applications", app_id, done="submitted")


def _refused(raw_id: str | None) -> Any:
    def refused(page: Page, form: Form, err: SDEError) -> Response:
        app = page.committee.get(page.user, application_id(raw_id)) if raw_id else None
        return form_page(page, typed_from_form(form), app, error=err, problems=problems_of(err))

    return refused


@router.post("/applications")
async def create(request: Request) -> Response:
    return await post_page(request, lambda p, f: _save(p, f, None), _refused(None))


@router.post("/applications/{app_id}")
async def update(request: Request, app_id: str) -> Response:
    return await post_page(
        request,
        lambda p, f: _save(p, f, application_id(app_id)),
        _refused(app_id),
    )


def _edit(page: Page, app_id: int) -> Response:
    app = page.committee.get(page.user, app_id)
    check_can(Action.EDIT, Relation(app["you"]), State(app["state"]))
    return form_page(page, typed_from_body(app), app)


@router.get("/applications/{app_id}/edit")
async def edit(request: Request, app_id: str) -> Response:
    return await get_page(request, lambda page: _edit(page, application_id(app_id)))
