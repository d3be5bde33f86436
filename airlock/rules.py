"""Who someone is to a request, what a file's votes decide, and what stays blind.

Pure functions over registry rows; :mod:`airlock.requests` calls them inside its
transactions and :mod:`airlock.views` when it shows a request.

* :func:`relation_of`: the author; another project member (an output checker who is a
  member counts as a member: they never review their own project); an output checker;
  committee; admin; anyone else.
* :func:`decision`: two approvals approve a file, two requests for changes ask for
  changes, one of each is a conflict a third checker settles (by majority); a request
  that needs one review is decided by one vote. Only the votes of submitted reviews count.
* :func:`vote_visible` / :func:`comment_visible`: reviews are blind until the turn's
  reviews are in; the author sees public comments once a turn ends, never votes.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from airlock.workflow import UNDER_REVIEW, Action, Relation, State, can
from sde.registry.airlock import AirlockComment, AirlockRequest, AirlockVote

APPROVE = "approve"
REQUEST_CHANGES = "request_changes"
VOTES = (APPROVE, REQUEST_CHANGES)


def relation_of(
    user: str, request: AirlockRequest, members: Collection[str], roles: Collection[str]
) -> Relation:
    """How ``user`` (with ``roles``) stands to ``request`` (its project has ``members``)."""
    if user == request.author:
        return Relation.AUTHOR
    if user in members:
        return Relation.MEMBER
    for role, relation in (
        ("output-checker", Relation.CHECKER),
        ("admin", Relation.ADMIN),
        ("committee", Relation.COMMITTEE),
    ):
        if role in roles:
            return relation
    return Relation.OTHER


def decision(votes: Sequence[str], reviews_needed: int) -> str:
    """A file's decision from the counted votes of one turn.

    >>> decision(["approve", "approve"], 2), decision(["approve"], 2), decision(["approve"], 1)
    ('approved', 'incomplete', 'approved')
    >>> decision(["approve", "request_changes"], 2)
    'conflicted'
    >>> decision(["approve", "request_changes", "approve"], 2)
    'approved'
    """
    approvals = sum(v == APPROVE for v in votes)
    changes = sum(v == REQUEST_CHANGES for v in votes)
    if approvals + changes < reviews_needed:
        return "incomplete"
    if approvals > changes and (changes == 0 or approvals + changes >= 3):
        return "approved"
    if changes > approvals and (approvals == 0 or approvals + changes >= 3):
        return "changes_requested"
    return "conflicted"


def visible(relation: Relation, request: AirlockRequest) -> bool:
    """Whether someone in ``relation`` sees ``request`` at all (else it looks missing).

    A request never submitted is its author's alone, even once withdrawn.
    """
    if relation is not Relation.AUTHOR and request.turn == 0:
        return False
    return can(Action.VIEW, relation, State(request.state))


def blind(request: AirlockRequest, turn: int) -> bool:
    """Whether the reviews of ``turn`` are still blind (the turn is being reviewed)."""
    return turn == request.turn and State(request.state) in UNDER_REVIEW


def vote_visible(
    vote: AirlockVote,
    viewer: str,
    relation: Relation,
    request: AirlockRequest,
    reviewed: Collection[tuple[int, str]],
) -> bool:
    """Whether ``viewer`` sees ``vote``; ``reviewed`` holds the (turn, reviewer) pairs of
    submitted reviews. Another checker's vote shows only once it counts (their review is
    submitted) and the turn is no longer blind; a vote never submitted stays private."""
    if relation is not Relation.CHECKER:
        return False  # authors and others see decisions, never who voted what
    if vote.reviewer == viewer:
        return True
    return (vote.turn, vote.reviewer) in reviewed and not blind(request, vote.turn)


#: States in which the turn is over for the author (they may read the checkers' comments).
_TURN_OVER = frozenset({State.RETURNED, State.RELEASED, State.REJECTED, State.WITHDRAWN})


def comment_visible(
    comment: AirlockComment, viewer: str, relation: Relation, request: AirlockRequest
) -> bool:
    if comment.author == viewer:
        return True
    if relation is Relation.CHECKER:
        return comment.author == request.author or not blind(request, comment.turn)
    if relation in (Relation.AUTHOR, Relation.ADMIN):
        over = comment.turn < request.turn or State(request.state) in _TURN_OVER
        return comment.visibility == "public" and over
    return False
