"""The vocabulary search the application form picks its cohort with: ``vocabulary?q=``.

A search by name (every word, any case), by concept id or by code (SNOMED or local) over
the bundled OMOP vocabulary (:mod:`sde.omop.vocabulary`, the concepts and hierarchy each
node's ``concept`` and ``concept_ancestor`` hold). Cohorts are conditions, so only standard
Condition concepts are offered; each result shows its descendants (which the cohort takes
in too). The page renders server-side; with ``fragment=1`` it answers the results alone
(what the form's script puts in place, so a search keeps the form as typed).

>>> search("255573")[0].concept_name
'Chronic obstructive lung disease'
>>> search("emphysema")[0].concept_code
'87433001'
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import APIRouter, Request
from fastapi.responses import Response

from access_committee.pages.base import Page, get_page, secure
from access_committee.pages.form import is_id
from sde.omop.vocabulary import Concept, all_concepts, ancestors, child_concepts

router = APIRouter(include_in_schema=False)

#: Most results a search shows.
MAX_RESULTS = 30
#: Longest query taken.
MAX_QUERY = 200


@dataclass(frozen=True)
class Node:
    """A concept with the concepts below it, for the nested list the pages show."""

    concept: Concept
    children: tuple[Node, ...]
    #: Names of the concepts it is a kind of (search results only).
    above: tuple[str, ...] = ()


def _cohort_concepts() -> dict[int, Concept]:
    return {
        c.concept_id: c
        for c in all_concepts()
        if c.domain_id == "Condition" and c.standard_concept == "S"
    }


def search(q: str) -> list[Concept]:
    """Condition concepts whose id or code is ``q``, or whose name holds every word of it."""
    q = q.strip()[:MAX_QUERY]
    if not q:
        return []
    concepts = _cohort_concepts()
    exact = [c for c in concepts.values() if q in (str(c.concept_id), c.concept_code)]
    words = q.lower().split()
    named = [
        c
        for c in concepts.values()
        if c not in exact and all(w in c.concept_name.lower() for w in words)
    ]
    return (exact + sorted(named, key=lambda c: (len(c.concept_name), c.concept_name)))[
        :MAX_RESULTS
    ]


def tree(concept_id: int, depth: int = 0) -> Node | None:
    """``concept_id`` with its descendants (None if it is not a cohort concept)."""
    concepts = _cohort_concepts()
    found = concepts.get(concept_id)
    if found is None or depth > 8:
        return None
    below = (tree(child, depth + 1) for child in child_concepts(concept_id))
    return Node(found, tuple(n for n in below if n is not None))


def trees(ids: list[str] | list[int]) -> list[tuple[str, Node | None]]:
    """Each id as typed with its tree (None for an id the vocabulary does not hold)."""
    found: list[tuple[str, Node | None]] = []
    for raw in ids:
        text = str(raw).strip()
        found.append((text, tree(int(text)) if is_id(text) else None))
    return found


def results(q: str) -> list[Node]:
    """The search's concepts, each with its descendants and what it is a kind of."""
    concepts = _cohort_concepts()
    found = []
    for c in search(q):
        node = tree(c.concept_id)
        if node is not None:
            names = sorted(
                concepts[a].concept_name for a in ancestors(c.concept_id) if a in concepts
            )
            found.append(Node(node.concept, node.children, tuple(names)))
    return found


def _page(page: Page) -> Response:
    q = page.request.query_params.get("q", "")[:MAX_QUERY]
    picked = set(page.request.query_params.getlist("picked"))
    fragment = bool(page.request.query_params.get("fragment"))
    answer = page.render(
        "vocabulary_results.html" if fragment else "vocabulary.html",
        q=q,
        results=results(q),
        picked=picked,
        searched=bool(q),
        pickable=fragment,
    )
    secure(answer)
    return answer


@router.get("/vocabulary")
async def vocabulary(request: Request) -> Response:
    return await get_page(request, _page)
