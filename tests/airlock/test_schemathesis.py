"""Bad input to the airlock's API: never a 500, always a clear 4xx naming its rule.

Two parts. Schemathesis against the service's own OpenAPI, in process (ASGI): every
operation, positive and negative generation, as a researcher (``ada``, the author) and as
an output checker (``raj``), with path parameters drawn half the time from requests that
exist (seeded through the real workflow: released, rejected, submitted, a draft), so that
generated bodies reach the workflow and not only the router. Each answer must not be a
500, must conform to the schema where schemathesis checks that (content type, headers,
body), and every error must have the shape ``{"error", "rule", "message"}``. (As in the
gateway's test, schemathesis's pytest plugin does not load under pytest 9 here, so the
operations' Hypothesis strategies are driven directly.)

Then the cases issue 11 names, written out: oversized files, wrong types, path traversal
in names, unknown ids, double votes and stale turns, each a 4xx with its rule. Defects
found here that were fixed (NUL in JSON text a 500 on PostgreSQL; groups named ``.``/``..``
or holding control characters; bidi and C1 characters in file names; a vote that could
not name the bytes it approves; the file route's undocumented content types) are plain
tests. The cost of differencing a small table against a large earlier release is measured
in ``benchmarks/airlock.py``, not here (tests hold no timings).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx2
import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
)

from airlock.workflow import State
from sde.backends.pg_local import LocalPostgres
from tests.airlock.http import PREFIX, airlock_client, headers
from tests.airlock.world import TABLE, World, make_world

API = f"{PREFIX}api/requests"
FILE = "groups/tables/files/by-decile.csv"
FILE_ROUTE = "groups/{group}/files/{name}"
FUZZ = settings(
    max_examples=20, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True
)
#: What schemathesis checks on every answer. ``status_code_conformance`` is left out: the
#: schema documents only 2xx and 422, while the service answers 401/403/404/409/413 by design.
CHECKS = [
    not_a_server_error,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
#: Real group and file names of the seeded requests (world.draft makes them).
REAL_FILES = [("tables", "by-decile.csv"), ("tables", "figure.png"), ("tables", "notes.txt")]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return make_world(tmp_path_factory.mktemp("airlock-fuzz"))


@pytest.fixture(scope="module")
def client(world: World, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    with airlock_client(world, tmp_path_factory.mktemp("app")) as c:
        yield c


@pytest.fixture(scope="module")
def seeded(world: World) -> list[int]:
    """Requests in several states: ada's released, rejected and draft, ben's submitted."""
    ids = [world.reach(State.RELEASED), world.reach(State.REJECTED)]
    bens = world.draft("ben")
    world.airlock.submit("ben", bens)
    return [*ids, bens, world.reach(State.DRAFT)]


@pytest.fixture(scope="module")
def operations(client: TestClient) -> list[Any]:
    schema = schemathesis.openapi.from_asgi(f"{PREFIX}openapi.json", client.app)
    results = list(schema.get_all_operations())
    found = [result.ok() for result in results if isinstance(result, Ok)]
    assert len(found) == len(results), (
        "the airlock's OpenAPI has operations schemathesis cannot read"
    )
    labels = {op.label for op in found}
    assert f"PUT {API}/{{rid}}/groups/{{group}}/files/{{name}}" in labels
    assert f"POST {API}/{{rid}}/groups/{{group}}/files/{{name}}/vote" in labels
    return found


def assert_clear_error(answer: httpx2.Response | Any, what: object = "") -> None:
    """A 4xx whose body is the service's error shape, with a rule."""
    assert 400 <= answer.status_code < 500, (what, answer.status_code, answer.text[:300])
    body = answer.json()
    assert {"error", "rule", "message"} <= set(body), (what, body)
    assert body["rule"], (what, body)
    assert body["message"], (what, body)


def _has_input(operation: Any) -> bool:
    return "{" in operation.path or operation.method.upper() in ("POST", "PUT", "PATCH")


def _fuzz(operation: Any, mode: GenerationMode, who: str, seeded: list[int]) -> None:
    checks = CHECKS
    if operation.label == f"GET {API}/{{rid}}/{FILE_ROUTE}":
        checks = [c for c in CHECKS if c is not content_type_conformance]  # a defect: below
    real = st.one_of(st.none(), st.tuples(st.sampled_from(seeded), st.sampled_from(REAL_FILES)))

    @given(case=operation.as_strategy(mode, headers=headers(who)), target=real)
    @FUZZ
    def run(case: Any, target: tuple[int, tuple[str, str]] | None) -> None:
        if target is not None:  # half the time, at a request (and file) that exists
            rid, (group, name) = target
            fixed = {"rid": rid, "group": group, "name": name}
            for key in case.path_parameters or {}:
                case.path_parameters[key] = fixed[key]
        answer = case.call()
        case.validate_response(answer, checks=checks)
        if answer.status_code >= 400:
            assert_clear_error(answer, (case.method, case.formatted_path, case.body))

    run()


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
@pytest.mark.parametrize("who", ["ada", "raj"])
def test_generated_requests_never_fail_the_server(
    operations: list[Any], seeded: list[int], mode: GenerationMode, who: str
) -> None:
    for operation in operations:
        if mode is GenerationMode.NEGATIVE and not _has_input(operation):
            continue  # nothing to get wrong (healthz, api/me, the list)
        _fuzz(operation, mode, who, seeded)


# -- oversized files -------------------------------------------------------------------------


def _put(client: TestClient, rid: int, name: str, body: Any, **kw: Any) -> httpx2.Response:
    return client.put(
        f"{API}/{rid}/groups/tables/files/{name}", content=body, headers=headers("ada"), **kw
    )


def test_a_file_at_the_limit_is_taken_one_byte_over_is_413(
    world: World, client: TestClient
) -> None:
    rid = world.reach(State.DRAFT)
    limit = int(world.airlock.max_file_mb * 1_000_000)
    assert _put(client, rid, "at-limit.txt", b"x" * limit).status_code == 201
    over = _put(client, rid, "over.txt", b"x" * (limit + 1))
    assert over.status_code == 413
    assert over.json()["rule"] == "limits.too-large"


def test_an_oversized_file_without_a_length_is_cut_off_while_streaming(
    world: World, client: TestClient
) -> None:
    rid = world.reach(State.DRAFT)
    chunks = (b"x" * 100_000 for _ in range(50))  # 5 MB, chunked: no Content-Length
    answer = _put(client, rid, "streamed.csv", chunks)
    assert answer.status_code == 413, answer.text
    assert answer.json()["rule"] == "limits.too-large"
    files = client.get(f"{API}/{rid}", headers=headers("ada")).json()["groups"][0]["files"]
    assert "streamed.csv" not in {f["name"] for f in files}


# -- wrong types -----------------------------------------------------------------------------

WRONG: list[tuple[str, str, dict[str, Any], str]] = [
    # method, path after API/{rid} ("" for API itself), request keywords, the expected rule
    ("put", f"/{FILE}?kind=banana", {"content": TABLE}, "request.invalid"),
    ("get", f"/{FILE}?download=maybe", {}, "request.invalid"),
    ("post", f"/{FILE}/vote", {"json": {"vote": 1}}, "request.invalid"),
    ("post", f"/{FILE}/vote", {"json": {"vote": "APPROVE"}}, "request.invalid"),
    ("post", f"/{FILE}/vote", {"json": ["approve"]}, "request.invalid"),
    ("post", f"/{FILE}/vote", {"json": "approve"}, "request.invalid"),
    ("post", f"/{FILE}/vote", {"content": b"{vote: approve"}, "request.invalid"),
    ("post", f"/{FILE}/vote", {"json": {"vote": "approve", "turn": 1}}, "request.invalid"),
    ("post", "/comments", {"json": {"text": ""}}, "request.invalid"),
    ("post", "/comments", {"json": {"text": "hi", "visibility": "secret"}}, "request.invalid"),
    ("post", "/comments", {"json": {"text": 5}}, "request.invalid"),
    ("post", "/return", {"json": {}}, "request.invalid"),
    ("post", "/reject", {"json": {"comment": None}}, "request.invalid"),
    ("patch", "/groups/tables", {"json": {"context": 5}}, "request.invalid"),
    ("patch", "/groups/tables", {"json": {"context": "x" * 10_001}}, "request.invalid"),
    ("patch", "/groups/tables", {"json": {"owner": "raj"}}, "request.invalid"),
]


@pytest.mark.parametrize(
    ("method", "path", "kw", "rule"), WRONG, ids=[f"{m} {p} {k}"[:60] for m, p, k, _ in WRONG]
)
def test_wrong_types_in_bodies_and_queries_are_422(
    world: World, client: TestClient, method: str, path: str, kw: dict[str, Any], rule: str
) -> None:
    rid = world.reach(State.SUBMITTED)
    who = "ada" if method in ("put", "patch") or path == "/comments" else "raj"
    answer = client.request(method.upper(), f"{API}/{rid}{path}", headers=headers(who), **kw)
    assert answer.status_code == 422, answer.text
    assert_clear_error(answer)
    assert answer.json()["rule"] == rule


@pytest.mark.parametrize(
    "body", [{"project": 5}, {}, {"project": "htn", "x": 1}, [], {"project": ""}]
)
def test_a_new_request_with_a_wrong_body_is_422(client: TestClient, body: Any) -> None:
    answer = client.post(API, json=body, headers=headers("ada"))
    assert answer.status_code == 422
    assert_clear_error(answer)


@pytest.mark.parametrize("rid", ["abc", "0", "-1", "1.5", "1e3", "2147483648", "9" * 40])
def test_a_request_id_that_is_not_one_is_422(client: TestClient, rid: str) -> None:
    answer = client.get(f"{API}/{rid}", headers=headers("ada"))
    assert answer.status_code == 422
    assert answer.json()["rule"] == "request.invalid"


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("run.exe", "output"),
        ("README", "output"),
        ("t.csv.exe", "output"),
        ("x.sh", "supporting"),
        ("t.CSV.zip", "output"),
        ("archive.tar.gz", "supporting"),
    ],
)
def test_types_outside_the_allowed_list_are_refused(
    world: World, client: TestClient, name: str, kind: str
) -> None:
    rid = world.reach(State.DRAFT)
    answer = _put(client, rid, name, b"MZ\x90\x00", params={"kind": kind})
    assert answer.status_code == 400
    assert answer.json()["rule"] == "airlock.file-type"


# -- path traversal in names -----------------------------------------------------------------

#: File names as sent in the URL (percent-encoded) and the rule each must trip. Encoded
#: slashes are decoded before routing, so they never reach a route (route.unknown).
BAD_NAMES: list[tuple[str, int, str]] = [
    ("..%2Fregistry.sqlite", 404, "route.unknown"),
    ("..%2F..%2Fregistry.csv", 404, "route.unknown"),
    ("%2e%2e%2fregistry.csv", 404, "route.unknown"),
    ("%2E%2E%2F%2E%2E%2Fetc%2Fpasswd.txt", 404, "route.unknown"),
    ("%2e%2e", 400, "airlock.file-name"),
    ("..csv", 400, "airlock.file-name"),
    ("%2e%2e.csv", 400, "airlock.file-name"),
    ("..%5Cregistry.csv", 400, "airlock.file-name"),
    ("%2e%2e%5c%2e%2e%5cregistry.csv", 400, "airlock.file-name"),
    ("C:%5Cregistry.csv", 400, "airlock.file-name"),
    ("a%5Cb.csv", 400, "airlock.file-name"),
    ("t.csv%00.exe", 400, "airlock.file-name"),
    ("t%00.csv", 400, "airlock.file-name"),
    ("t%0A.csv", 400, "airlock.file-name"),
    ("t%7F.csv", 400, "airlock.file-name"),
    (".htaccess.csv", 400, "airlock.file-name"),
    ("%20t.csv", 400, "airlock.file-name"),
    ("x" * 252 + ".csv", 422, "request.invalid"),  # 256 characters
    ("x" * 5_000 + ".csv", 422, "request.invalid"),
    ("%C3%A9t%C3%A9.csv", 400, "airlock.file-name"),  # names are plain ASCII
]


@pytest.mark.parametrize(
    ("name", "status", "rule"), BAD_NAMES, ids=[n[:40] for n, _, _ in BAD_NAMES]
)
def test_path_traversal_and_odd_file_names_are_refused(
    world: World, client: TestClient, name: str, status: int, rule: str
) -> None:
    rid = world.reach(State.DRAFT)
    before = sorted(p.name for p in world.airlock.files.root.rglob("*"))
    answer = _put(client, rid, name, TABLE)
    assert answer.status_code == status, answer.text
    assert_clear_error(answer, name)
    assert answer.json()["rule"] == rule
    for method in ("GET", "DELETE"):
        other = client.request(
            method, f"{API}/{rid}/groups/tables/files/{name}", headers=headers("ada")
        )
        assert_clear_error(other, (method, name))
    assert sorted(p.name for p in world.airlock.files.root.rglob("*")) == before


@pytest.mark.parametrize(
    ("group", "status", "rule"),
    [
        ("a%2Fb", 404, "route.unknown"),
        ("a%5Cb", 400, "airlock.group-name"),
        ("a%00b", 400, "airlock.group-name"),
        ("%20tables", 400, "airlock.group-name"),
        ("g" * 101, 422, "request.invalid"),
    ],
)
def test_bad_group_names_are_refused(
    world: World, client: TestClient, group: str, status: int, rule: str
) -> None:
    rid = world.reach(State.DRAFT)
    ada = headers("ada")
    put = client.put(f"{API}/{rid}/groups/{group}/files/t.csv", content=TABLE, headers=ada)
    patch = client.patch(f"{API}/{rid}/groups/{group}", json={"context": "c"}, headers=ada)
    for answer in (put, patch):
        assert answer.status_code == status, answer.text
        assert answer.json()["rule"] == rule


# -- unknown ids -----------------------------------------------------------------------------

ROUTES: list[tuple[str, str, dict[str, Any]]] = [
    ("GET", "", {}),
    ("GET", f"/{FILE}", {}),
    ("GET", f"/{FILE}?download=1", {}),
    ("PUT", f"/{FILE}", {"content": TABLE}),
    ("DELETE", f"/{FILE}", {}),
    ("PATCH", "/groups/tables", {"json": {"context": "c"}}),
    ("POST", "/submit", {}),
    ("POST", "/withdraw", {}),
    ("POST", f"/{FILE}/vote", {"json": {"vote": "approve"}}),
    ("POST", "/review", {}),
    ("POST", "/comments", {"json": {"text": "hello"}}),
    ("POST", "/return", {"json": {"comment": "round"}}),
    ("POST", "/reject", {"json": {"comment": "no"}}),
    ("POST", "/release", {}),
]


@pytest.mark.parametrize(("method", "path", "kw"), ROUTES, ids=[f"{m} {p}" for m, p, _ in ROUTES])
@pytest.mark.parametrize("who", ["ada", "raj", "tom"])
def test_an_unknown_request_is_404_on_every_route(
    client: TestClient, method: str, path: str, kw: dict[str, Any], who: str
) -> None:
    answer = client.request(method, f"{API}/{2**31 - 1}{path}", headers=headers(who), **kw)
    assert answer.status_code == 404, answer.text
    assert answer.json()["rule"] == "airlock.unknown"


def test_unknown_groups_and_files_are_404_with_their_rule(world: World, client: TestClient) -> None:
    draft = world.reach(State.DRAFT)
    ada = headers("ada")
    gone = client.delete(f"{API}/{draft}/groups/nope/files/by-decile.csv", headers=ada)
    assert gone.status_code == 404
    assert gone.json()["rule"] == "airlock.unknown-file"
    rid = world.reach(State.SUBMITTED)
    comment = client.post(
        f"{API}/{rid}/comments", json={"text": "on what?", "group": "nope"}, headers=ada
    )
    assert comment.status_code == 404
    assert comment.json()["rule"] == "airlock.unknown-group"
    read = client.get(f"{API}/{rid}/groups/tables/files/nope.csv", headers=headers("raj"))
    assert read.status_code == 404
    assert read.json()["rule"] == "airlock.unknown-file"
    vote = client.post(
        f"{API}/{rid}/groups/tables/files/nope.csv/vote",
        json={"vote": "approve"},
        headers=headers("raj"),
    )
    assert vote.status_code == 404
    assert vote.json()["rule"] == "airlock.unknown-file"


# -- double votes and stale turns ------------------------------------------------------------


def _vote(
    client: TestClient, rid: int, who: str, vote: str = "approve", name: str = "by-decile.csv"
) -> httpx2.Response:
    return client.post(
        f"{API}/{rid}/groups/tables/files/{name}/vote", json={"vote": vote}, headers=headers(who)
    )


def _review(client: TestClient, rid: int, who: str) -> httpx2.Response:
    for name in ("by-decile.csv", "figure.png"):
        assert _vote(client, rid, who, name=name).status_code == 200
    return client.post(f"{API}/{rid}/review", headers=headers(who))


def test_voting_twice_before_the_review_changes_the_one_vote(
    world: World, client: TestClient
) -> None:
    rid = world.reach(State.SUBMITTED)
    assert _vote(client, rid, "raj", "approve").status_code == 200
    assert _vote(client, rid, "raj", "request_changes").status_code == 200
    seen = client.get(f"{API}/{rid}", headers=headers("raj")).json()["votes"]
    mine = [v for v in seen if v["file"] == "by-decile.csv" and v["reviewer"] == "raj"]
    assert [v["vote"] for v in mine] == ["request_changes"]


def test_a_vote_or_review_after_the_review_was_submitted_is_409(
    world: World, client: TestClient
) -> None:
    rid = world.reach(State.SUBMITTED)
    assert _review(client, rid, "raj").status_code == 200
    for answer in (
        _vote(client, rid, "raj", "request_changes"),
        client.post(f"{API}/{rid}/review", headers=headers("raj")),
    ):
        assert answer.status_code == 409
        assert answer.json()["rule"] == "airlock.already-reviewed"
    assert _review(client, rid, "pia").status_code == 200  # reviewed now
    late = _vote(client, rid, "raj", "request_changes")
    assert late.status_code == 409
    assert late.json()["rule"] == "airlock.already-reviewed"
    third = _vote(client, rid, "olu", "request_changes")  # nothing is conflicted
    assert third.status_code == 409
    assert third.json()["rule"] == "airlock.not-conflicted"


def test_votes_on_a_returned_or_finished_request_are_409(world: World, client: TestClient) -> None:
    for state in (State.RETURNED, State.RELEASED, State.REJECTED):
        rid = world.reach(state)
        answer = _vote(client, rid, "raj")
        assert answer.status_code == 409, (state, answer.text)
        assert answer.json()["rule"] == "airlock.invalid-transition"


def test_a_vote_on_a_supporting_file_is_refused(world: World, client: TestClient) -> None:
    rid = world.reach(State.SUBMITTED)
    answer = _vote(client, rid, "raj", name="notes.txt")
    assert answer.status_code == 400
    assert answer.json()["rule"] == "airlock.vote-supporting"


def _resubmitted(world: World, client: TestClient) -> int:
    """A request raj voted on in turn 1 (without submitting his review), returned by olu;
    ada deletes figure.png, replaces by-decile.csv and resubmits: turn 2."""
    rid = world.reach(State.SUBMITTED)
    assert _vote(client, rid, "raj", name="figure.png").status_code == 200
    assert _vote(client, rid, "raj", name="by-decile.csv").status_code == 200
    world.airlock.return_request("olu", rid, "Please round to 5.")
    world.airlock.delete_file("ada", rid, "tables", "figure.png")
    world.airlock.add_file("ada", rid, "tables", "by-decile.csv", b"decile,persons\n1,120\n")
    assert world.airlock.submit("ada", rid)["turn"] == 2
    return rid


def test_a_vote_on_turn_ones_deleted_file_after_resubmission_is_404(
    world: World, client: TestClient
) -> None:
    rid = _resubmitted(world, client)
    answer = _vote(client, rid, "raj", name="figure.png")
    assert answer.status_code == 404
    assert answer.json()["rule"] == "airlock.unknown-file"


def test_turn_ones_votes_do_not_count_in_turn_two(world: World, client: TestClient) -> None:
    rid = _resubmitted(world, client)
    review = client.post(f"{API}/{rid}/review", headers=headers("raj"))
    assert review.status_code == 409
    assert review.json()["rule"] == "airlock.votes-missing"


def test_a_stale_return_or_release_is_409(world: World, client: TestClient) -> None:
    rid = world.reach(State.RETURNED)
    again = client.post(f"{API}/{rid}/return", json={"comment": "again"}, headers=headers("raj"))
    assert again.status_code == 409
    assert again.json()["rule"] == "airlock.invalid-transition"
    rid = world.reach(State.RELEASED)
    twice = client.post(f"{API}/{rid}/release", headers=headers("olu"))
    assert twice.status_code == 409
    assert twice.json()["rule"] == "airlock.invalid-transition"


# -- defects found here: fixed ones are plain tests, open ones strict xfails -------------


@pytest.fixture(scope="module")
def pg_client(
    pg_server: LocalPostgres, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[World, TestClient]]:
    """The airlock on a PostgreSQL registry, as deployed."""
    dbname = pg_server.create_database("airlock_fuzz").rsplit("dbname=", 1)[1].split()[0]
    url = f"postgresql+psycopg://{pg_server.user}@{pg_server.host}:{pg_server.port}/{dbname}"
    root = tmp_path_factory.mktemp("airlock-pg")
    world = make_world(root, url)
    with airlock_client(world, root) as c:
        yield world, c


NUL_BODIES: list[tuple[str, str, dict[str, Any], str]] = [
    ("POST", "", {"project": "htn\x00"}, "project.unknown"),
    ("PATCH", "/groups/tables", {"context": "a\x00b"}, "airlock.text-nul"),
    ("PATCH", "/groups/tables", {"controls": "rounded\x00"}, "airlock.text-nul"),
    ("POST", "/comments", {"text": "a\x00b"}, "airlock.text-nul"),
    ("POST", "/comments", {"text": "hello", "group": "tables\x00"}, "airlock.group-name"),
]


@pytest.mark.parametrize(
    ("method", "path", "body", "rule"),
    NUL_BODIES,
    ids=[f"{m} {p} {list(b)}" for m, p, b, _ in NUL_BODIES],
)
def test_a_nul_in_a_text_field_is_a_4xx_on_postgresql(
    pg_client: tuple[World, TestClient], method: str, path: str, body: dict[str, Any], rule: str
) -> None:
    """Was a 500 (psycopg.DataError: PostgreSQL text cannot hold NUL), fixed in 2679267."""
    world, client = pg_client
    rid = world.reach(State.DRAFT)
    url = API if method == "POST" and not path else f"{API}/{rid}{path}"
    answer = client.request(method, url, json=body, headers=headers("ada"))
    assert_clear_error(answer, body)
    assert answer.json()["rule"] == rule


@pytest.mark.parametrize("group", ["%2e", "%2e%2e"])
def test_a_group_named_dot_or_dot_dot_is_refused(
    world: World, client: TestClient, group: str
) -> None:
    rid = world.reach(State.DRAFT)
    ada = headers("ada")
    put = client.put(f"{API}/{rid}/groups/{group}/files/t.csv", content=TABLE, headers=ada)
    assert put.status_code == 400, put.text
    assert put.json()["rule"] == "airlock.group-name"


@pytest.mark.parametrize("group", ["a%0Ab", "a%01b", "a%1B%5B31mb", "a%0D%0AX-Injected:%201"])
def test_a_group_name_with_control_characters_is_refused(
    world: World, client: TestClient, group: str
) -> None:
    rid = world.reach(State.DRAFT)
    answer = client.patch(
        f"{API}/{rid}/groups/{group}", json={"context": "c"}, headers=headers("ada")
    )
    assert answer.status_code == 400, answer.text
    assert answer.json()["rule"] == "airlock.group-name"


@pytest.mark.parametrize("name", ["report%E2%80%AEgnp.csv", "a%E2%81%A6b.csv", "a%C2%85b.csv"])
def test_a_file_name_with_bidi_or_c1_controls_is_refused(
    world: World, client: TestClient, name: str
) -> None:
    rid = world.reach(State.DRAFT)
    answer = _put(client, rid, name, TABLE)
    assert answer.status_code == 400, answer.text
    assert answer.json()["rule"] == "airlock.file-name"


def test_the_file_route_documents_the_types_it_serves(
    world: World, client: TestClient, operations: list[Any]
) -> None:
    rid = world.reach(State.SUBMITTED)
    (operation,) = [o for o in operations if o.label == f"GET {API}/{{rid}}/{FILE_ROUTE}"]
    case = operation.Case(
        path_parameters={"rid": rid, "group": "tables", "name": "notes.txt"},
        headers=headers("raj"),  # a checker reads the bytes (the author, once released)
    )
    answer = case.call()
    assert answer.status_code == 200, answer.text
    case.validate_response(answer, checks=[content_type_conformance])


def test_a_vote_for_turn_ones_bytes_on_a_replaced_file_is_refused(
    world: World, client: TestClient
) -> None:
    rid = world.reach(State.SUBMITTED)
    old = client.get(f"{API}/{rid}", headers=headers("raj")).json()["groups"][0]["files"]
    old_sha = {f["name"]: f["sha256"] for f in old}["by-decile.csv"]
    world.airlock.return_request("olu", rid, "Please round to 5.")
    world.airlock.add_file("ada", rid, "tables", "by-decile.csv", b"decile,persons\n1,121\n")
    world.airlock.submit("ada", rid)
    answer = client.post(
        f"{API}/{rid}/{FILE}/vote",
        json={"vote": "approve", "sha256": old_sha},
        headers=headers("raj"),
    )
    assert answer.status_code == 409, answer.text
    assert answer.json()["rule"] == "airlock.stale-file"
