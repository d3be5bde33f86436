"""What the services' workflows share: the permission check over a workflow's tables.

A workflow (the airlock's requests, the committee's applications) is data: for every action,
the states in which each relation to the object may take it. :class:`Rulebook` turns such a
table into the one check every caller uses: ``AccessDenied`` (``<area>.not-permitted``)
when the relation may never take the action, ``InvalidTransition``
(``<area>.invalid-transition``, naming the state and the action) when it may, but not in
this state.

>>> book = Rulebook("demo", "a letter", {"send": {"author": frozenset({"draft"})}},
...                 who={"author": "its author", "reader": "a reader"}, done={"send": "sent"},
...                 order=("draft", "sent"))
>>> book.can("send", "author", "draft"), book.can("send", "reader", "draft")
(True, False)
>>> book.check("send", "author", "sent")
Traceback (most recent call last):
...
sde.errors.InvalidTransition: the letter is sent: it cannot be sent (only when draft)
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sde.errors import AccessDenied, InvalidTransition


@dataclass(frozen=True)
class Rulebook:
    """``permissions[action][relation]``: the states in which ``relation`` may ``action``."""

    area: str
    #: The object with its article ("a request"); "the" replaces it in state messages.
    noun: str
    permissions: Mapping[Any, Mapping[Any, frozenset[Any]]]
    who: Mapping[Any, str]
    done: Mapping[Any, str]
    #: The states in the order messages list them.
    order: Sequence[Hashable]

    def check(self, action: Any, relation: Any, state: Any) -> None:
        allowed = self.permissions[action]
        if relation not in allowed:
            raise AccessDenied(
                f"{self.area}.not-permitted",
                f"as {self.who[relation]} you cannot have {self.noun} {self.done[action]}",
            )
        if state not in allowed[relation]:
            the = "the " + self.noun.split(" ", 1)[1]
            raise InvalidTransition(
                f"{self.area}.invalid-transition",
                f"{the} is {state}: it cannot be {self.done[action]} "
                f"(only when {self._listed(allowed[relation])})",
            )

    def can(self, action: Any, relation: Any, state: Any) -> bool:
        try:
            self.check(action, relation, state)
        except (AccessDenied, InvalidTransition):
            return False
        return True

    def _listed(self, states: frozenset[Any]) -> str:
        names = [str(s) for s in self.order if s in states]
        return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]
