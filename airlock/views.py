"""Requests as the caller may see them: API.md's request JSON, filtered by who is looking.

A checker sees their own votes and comments and, once a turn's reviews are in, everyone's;
the author sees public comments of finished turns and each file's decision once the turn
has ended, never who voted what. ``actions`` lists what the caller may do now (the page's
buttons), read from the workflow table.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from airlock.rules import blind, comment_visible, decision, relation_of, visible, vote_visible
from airlock.workflow import OWNERS, Relation, State, actions_for
from sde.registry.airlock import (
    AirlockComment,
    AirlockFile,
    AirlockGroup,
    AirlockRequest,
    AirlockReview,
    AirlockVote,
)
from sde.registry.people import UserRole
from sde.registry.projects import Membership


def _iso(value: dt.datetime) -> str:
    return value.isoformat()


def file_decision(session: Session, request: AirlockRequest, file: AirlockFile) -> str:
    """The file's decision this turn, from the votes of submitted reviews."""
    reviewers = select(AirlockReview.reviewer).where(
        AirlockReview.request_id == request.id, AirlockReview.turn == request.turn
    )
    votes = session.scalars(
        select(AirlockVote.vote).where(
            AirlockVote.file_id == file.id,
            AirlockVote.turn == request.turn,
            AirlockVote.reviewer.in_(reviewers),
        )
    )
    return decision(list(votes), request.reviews_needed)


def file_view(
    session: Session,
    request: AirlockRequest,
    file: AirlockFile,
    relation: Relation,
    *,
    viewer: str | None = None,
) -> dict[str, Any]:
    # Only submitted reviews count, so while a turn is blind its decisions are "incomplete"
    # for everyone: showing them reveals no vote.
    shown = None
    if file.kind == "output":
        shown = file_decision(session, request, file) if request.turn else "incomplete"
    checks: dict[str, Any] = {"status": file.checks_status}
    if file.checks_report:
        checks["report"] = json.loads(file.checks_report)
    return {
        "name": file.name,
        "sha256": file.sha256,
        "size": file.size,
        "kind": file.kind,
        "checks": checks,
        "decision": shown,
    }


def group_view(
    session: Session, request: AirlockRequest, group: AirlockGroup, relation: Relation
) -> dict[str, Any]:
    files = session.scalars(
        select(AirlockFile).where(AirlockFile.group_id == group.id).order_by(AirlockFile.name)
    )
    return {
        "name": group.name,
        "context": group.context,
        "controls": group.controls,
        "files": [file_view(session, request, f, relation) for f in files],
    }


def comment_view(comment: AirlockComment) -> dict[str, Any]:
    return {
        "id": comment.id,
        "group": comment.group_name,
        "turn": comment.turn,
        "author": comment.author,
        "text": comment.text,
        "visibility": comment.visibility,
        "created_at": _iso(comment.created_at),
    }


def request_view(
    session: Session, request: AirlockRequest, viewer: str, relation: Relation
) -> dict[str, Any]:
    groups = session.scalars(
        select(AirlockGroup)
        .where(AirlockGroup.request_id == request.id)
        .order_by(AirlockGroup.name)
    )
    votes = session.execute(
        select(AirlockVote, AirlockFile.name, AirlockGroup.name)
        .join(AirlockFile, AirlockVote.file_id == AirlockFile.id)
        .join(AirlockGroup, AirlockFile.group_id == AirlockGroup.id)
        .where(AirlockGroup.request_id == request.id)
        .order_by(AirlockVote.turn, AirlockVote.id)
    )
    comments = session.scalars(
        select(AirlockComment)
        .where(AirlockComment.request_id == request.id)
        .order_by(AirlockComment.id)
    )
    submitted = {
        (r.turn, r.reviewer)
        for r in session.scalars(
            select(AirlockReview).where(AirlockReview.request_id == request.id)
        )
    }
    return {
        **summary(request),
        "groups": [group_view(session, request, g, relation) for g in groups],
        "votes": [
            {"group": group, "file": name, "turn": v.turn, "reviewer": v.reviewer, "vote": v.vote}
            for v, name, group in votes
            if vote_visible(v, viewer, relation, request, submitted)
        ],
        "comments": [
            comment_view(c) for c in comments if comment_visible(c, viewer, relation, request)
        ],
        "reviews": sorted(r for t, r in submitted if t == request.turn)
        if relation is Relation.CHECKER and not blind(request, request.turn)
        else None,
        "you": relation.value,
        "actions": [a.value for a in actions_for(relation, State(request.state))],
    }


def summary(request: AirlockRequest) -> dict[str, Any]:
    state = State(request.state)
    return {
        "id": request.id,
        "project": request.project,
        "author": request.author,
        "state": state.value,
        "turn": request.turn,
        "reviews_needed": request.reviews_needed,
        "created_at": _iso(request.created_at),
        "state_changed_at": _iso(request.state_changed_at),
        "waiting_for": sorted(r.value for r in OWNERS[state]),
    }


def visible_requests(session: Session, user: str) -> list[dict[str, Any]]:
    """Summaries of every request ``user`` may see, newest first."""
    roles = set(session.scalars(select(UserRole.role).where(UserRole.username == user)))
    memberships = set(
        session.scalars(select(Membership.project).where(Membership.username == user))
    )
    staff = bool(roles & {"output-checker", "admin"})
    query = select(AirlockRequest).order_by(AirlockRequest.id.desc())
    if not staff:
        query = query.where(AirlockRequest.author == user)
    shown = []
    for request in session.scalars(query):
        members = {user} if request.project in memberships else set()
        relation = relation_of(user, request, members, roles)
        if visible(relation, request):
            shown.append(summary(request))
    return shown
