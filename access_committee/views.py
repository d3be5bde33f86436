"""An application as the caller may see it (API.md's application JSON, plus the review).

The applicant and the members it names see the decision, the conditions and each node's
answer with its reason; committee members also see the conflict declarations and votes of
the current round; custodians see the node decisions.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from access_committee.forms import FIELDS
from access_committee.workflow import PERMISSIONS, Action, Relation, State, can
from sde.registry.committee import Application, CommitteeVote, ConflictDeclaration, NodeDecision


def application_view(
    session: Session,
    app: Application,
    relation: Relation,
    problems: list[tuple[str, str]],
    *,
    relations: Sequence[Relation] = (),
) -> dict[str, Any]:
    """``app`` as seen by ``relation``; ``actions`` are those of any of ``relations`` (a
    committee member who is also a requested node's custodian votes and answers for it)."""
    body = json.loads(app.body)
    state = State(app.state)
    parts = list(dict.fromkeys([relation, *relations]))
    view: dict[str, Any] = {
        "id": app.id,
        **{field: body.get(field) for field in FIELDS},
        "project": app.project or body.get("project"),
        "applicant": app.applicant,
        "kind": app.kind,
        "state": state.value,
        "round": app.round,
        "conditions": app.conditions,
        "version": app.version,
        "created_at": app.created_at.isoformat(),
        "state_changed_at": app.state_changed_at.isoformat(),
        "problems": [{"field": f, "message": m} for f, m in problems],
        "nodes_decided": [
            {"node": d.node, "agree": d.agree, "reason": d.reason}
            for d in session.scalars(
                select(NodeDecision).where(
                    NodeDecision.application_id == app.id, NodeDecision.round == app.round
                )
            )
        ],
        "you": relation.value,
        "relations": [r.value for r in parts],
        "actions": [
            a.value for a in Action if a in PERMISSIONS and any(can(a, r, state) for r in parts)
        ],
    }
    if relation is Relation.COMMITTEE:
        view["conflicts"] = [
            {"member": c.member, "conflict": c.conflict, "note": c.note}
            for c in session.scalars(
                select(ConflictDeclaration).where(
                    ConflictDeclaration.application_id == app.id,
                    ConflictDeclaration.round == app.round,
                )
            )
        ]
        view["votes"] = [
            {"member": v.member, "vote": v.vote, "conditions": v.conditions, "comment": v.comment}
            for v in session.scalars(
                select(CommitteeVote).where(
                    CommitteeVote.application_id == app.id, CommitteeVote.round == app.round
                )
            )
        ]
    return view
