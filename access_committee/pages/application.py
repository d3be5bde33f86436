"""One application's page, as the caller may see it (``applications/{id}``).

The applicant and the members it names see its state, the decision, the conditions and
each node's answer with its reason, with submit and withdraw when the workflow allows.
Committee members see it side by side with a preview of what the compiled scope will
expose (tables, columns, nodes, period, cohort, and the cohort's size per node, rounded:
:mod:`access_committee.cohort_size`), the round's declarations and votes, and the forms to
declare a conflict (or none) and to vote. A node's custodian sees the same preview and
agrees or declines for their node (a reason is required to decline). Which forms show is
read from the view's ``actions`` (the workflow's :func:`~access_committee.workflow.can`);
the service decides all the same.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from access_committee import forms
from access_committee.cohort_size import NodeSize, cohort_sizes, period_years
from access_committee.pages import vocabulary
from access_committee.pages.base import (
    Form,
    Page,
    application_id,
    confirmations,
    get_page,
    post_page,
)
from access_committee.workflow import IN_REVIEW, State
from sde.errors import InvalidInput, SDEError
from sde.gateway.errors import status_of
from sde.omop.cdm import CDM
from sde.scope import Scope

router = APIRouter(include_in_schema=False)

confirmations(
    declared="Your declaration was recorded.",
    voted="Your vote was recorded.",
    node="Your decision for the node was recorded.",
)
#: The audit event of a cohort-size preview shown to a reviewer.
PREVIEW_EVENT = "application.cohort-preview"
VOTES = (
    ("approve", "Approve"),
    ("approve_with_conditions", "Approve with conditions"),
    ("defer", "Defer (the applicant may change it and submit again)"),
    ("reject", "Reject"),
)


def preview(page: Page, app: dict[str, Any]) -> dict[str, Any]:
    """What the compiled scope would expose if approved now (nodes that declined left out),
    and the cohort's size per requested node, rounded."""
    declined = {d["node"] for d in app["nodes_decided"] if not d["agree"]}
    asked = [n for n in (app.get("nodes") or []) if isinstance(n, str)]
    try:
        scope = Scope.from_dict(
            forms.compile_scope(app, agreed_nodes=[n for n in asked if n not in declined])
        )
    except SDEError as err:
        return {"error": err.message}
    tables = [
        {
            "name": name,
            "columns": list(cols),
            "withheld": [w.split(".", 1)[1] for w in scope.withheld if w.startswith(name + ".")],
            "all": set(cols) == set(CDM.exposable_columns(name)) if CDM.has_table(name) else False,
        }
        for name, cols in sorted(scope.tables.items())
    ]
    settings = page.request.app.state.gateway.settings
    years, withheld = period_years(scope), sizes_withheld(page, app)
    sizes = []
    if withheld is None:
        counted = asked if app["you"] == "committee" else [n for n in asked if n in page.nodes]
        sizes = cohort_sizes(scope, counted, settings.data_dir)
        _audit_preview(page, app, scope, sizes, years)
    return {
        "scope": scope,
        "tables": tables,
        "declined": sorted(declined),
        "cohort": vocabulary.trees(list(scope.cohort_concepts or ())),
        "sizes": sizes,
        "sizes_withheld": withheld,
        "years": _years_text(years),
    }


def sizes_withheld(page: Page, app: dict[str, Any]) -> str | None:
    """Why the cohort's sizes are not shown to this reviewer, or None (the rule is in
    docs/committee.md): only while the application is in review, never to a member who
    declared a conflict, and to a custodian who is no committee member for their own
    nodes only (:func:`preview`)."""
    if State(app["state"]) not in IN_REVIEW:
        return "The cohort's size per node is shown only while the application is in review."
    mine = _mine(app, page.user, "conflicts")
    if mine is not None and mine["conflict"]:
        return "You declared a conflict of interest: the cohort's size is not shown to you."
    return None


def _years_text(years: tuple[int | None, int | None] | None) -> str:
    first, last = years or (None, None)
    if first == last and first is not None:
        return str(first)
    return f"{first or 'any year'} to {last or 'any year'}"


def _audit_preview(
    page: Page,
    app: dict[str, Any],
    scope: Scope,
    sizes: list[NodeSize],
    years: tuple[int | None, int | None] | None,
) -> None:
    """Record the figures a reviewer was shown, and for which cohort and years, so that
    probing by many previews can be seen afterwards."""
    details = {
        "cohort": list(scope.cohort_concepts or ()),
        "years": list(years) if years else None,
        "sizes": {s.node: [s.persons, s.in_period] for s in sizes if not s.missing},
    }
    with page.committee.store.write() as tx:
        tx.audit(
            page.user,
            PREVIEW_EVENT,
            f"application:{app['id']}",
            project=str(app.get("project") or ""),
            details=details,
        )


def _counted(app: dict[str, Any]) -> int:
    """Votes of the round from members without a declared conflict (as the service counts
    them, but for members who left the committee since, whom the page cannot tell)."""
    conflicted = {c["member"] for c in app.get("conflicts", []) if c["conflict"]}
    return sum(1 for v in app.get("votes", []) if v["member"] not in conflicted)


def _mine(app: dict[str, Any], user: str, key: str) -> dict[str, Any] | None:
    return next((row for row in app.get(key, []) if row["member"] == user), None)


def application_page(
    page: Page,
    app_id: int,
    *,
    error: SDEError | None = None,
    typed: Form | None = None,
) -> Response:
    """The application's page (a refused form's values in ``typed``)."""
    app = page.committee.get(page.user, app_id)
    judging = app["you"] in ("committee", "custodian")
    my_nodes = [n for n in (app.get("nodes") or []) if n in page.nodes]
    answers = {d["node"]: d for d in app["nodes_decided"]}
    return page.render(
        "application.html",
        status_of(error) if error else 200,
        app=app,
        error=error,
        typed=typed or Form([]),
        preview=preview(page, app) if judging else None,
        my_conflict=_mine(app, page.user, "conflicts"),
        my_vote=_mine(app, page.user, "votes"),
        votes=VOTES,
        counted=_counted(app),
        quorum=page.committee.quorum,
        my_nodes=my_nodes,
        answers=answers,
        cohort=vocabulary.trees(list((app.get("cohort") or {}).get("any_condition") or [])),
    )


@router.get("/applications/{app_id}")
async def show(request: Request, app_id: str) -> Response:
    return await get_page(request, lambda page: application_page(page, application_id(app_id)))


async def _action(request: Request, raw_id: str, do: Any, done: str) -> Response:
    """A form on the application's page: ``do(page, form, app_id)``, then show the page
    again (with the refusal and the form as typed, if refused)."""

    def act(page: Page, form: Form) -> str:
        app_id = application_id(raw_id)
        do(page, form, app_id)
        return page.url("applications", app_id, done=done)

    def refused(page: Page, form: Form, err: SDEError) -> Response:
        return application_page(page, application_id(raw_id), error=err, typed=form)

    return await post_page(request, act, refused)


@router.post("/applications/{app_id}/submit")
async def submit(request: Request, app_id: str) -> Response:
    return await _action(
        request, app_id, lambda p, f, a: p.committee.submit(p.user, a), "submitted"
    )


@router.post("/applications/{app_id}/withdraw")
async def withdraw(request: Request, app_id: str) -> Response:
    return await _action(
        request, app_id, lambda p, f, a: p.committee.withdraw(p.user, a), "withdrawn"
    )


@router.post("/applications/{app_id}/conflicts")
async def declare(request: Request, app_id: str) -> Response:
    def do(page: Page, form: Form, app_id: int) -> None:
        conflict = form.get("conflict")
        if conflict not in ("yes", "no"):
            raise _choose("conflict", "say whether you have a conflict of interest")
        page.committee.declare(
            page.user, app_id, conflict=conflict == "yes", note=_text(form, "note", 5_000)
        )

    return await _action(request, app_id, do, "declared")


@router.post("/applications/{app_id}/votes")
async def vote(request: Request, app_id: str) -> Response:
    def do(page: Page, form: Form, app_id: int) -> None:
        if not form.get("vote"):
            raise _choose("vote", "choose your vote")
        page.committee.vote(
            page.user,
            app_id,
            form.get("vote"),
            conditions=_text(form, "conditions", 10_000) or None,
            comment=_text(form, "comment", 10_000) or None,
        )

    return await _action(request, app_id, do, "voted")


@router.post("/applications/{app_id}/nodes/{node}")
async def node_decision(request: Request, app_id: str, node: str) -> Response:
    def do(page: Page, form: Form, app_id: int) -> None:
        agree = form.get(f"agree-{node}")
        if agree not in ("yes", "no"):
            raise _choose("agree", f"say whether {node} agrees or declines")
        page.committee.node_decision(
            page.user,
            app_id,
            node,
            agree=agree == "yes",
            reason=_text(form, f"reason-{node}", 5_000),
        )

    return await _action(request, app_id, do, "node")


def _choose(field: str, message: str) -> SDEError:
    return InvalidInput(f"committee.{field}-choice", message, field=field)


def _text(form: Form, name: str, limit: int) -> str:
    """A text field of the form, refused (naming it) past ``limit`` characters."""
    value = form.get(name)
    if len(value) > limit:
        raise InvalidInput(
            f"committee.{name}-too-long", f"{name}: at most {limit:,} characters", field=name
        )
    return value
