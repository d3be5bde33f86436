"""The airlock's pages over HTTP: who sees each page, every form, refusals with their rule."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx  # the client starlette's TestClient answers with
import pytest
from fastapi.testclient import TestClient

from airlock.app import create_app
from airlock.pages import parse_multipart
from airlock.workflow import State
from sde.errors import InvalidInput
from sde.gateway.auth import HubAuthenticator
from sde.settings import Settings
from tests.airlock.http import PREFIX, airlock_client, csrf, headers, page, post
from tests.airlock.world import TABLE, World, make_world

SMALL = b"decile,persons\n1,4\n2,135\n"  # 4 persons is under the threshold of 10


@pytest.fixture
def world(tmp_path: Path) -> World:
    return make_world(tmp_path)


@pytest.fixture
def client(world: World, tmp_path: Path) -> Iterator[TestClient]:
    with airlock_client(world, tmp_path) as c:
        yield c


def refused(answer: httpx.Response, status: int, rule: str) -> None:
    assert answer.status_code == status, answer.text[:500]
    assert answer.headers["content-type"].startswith("text/html")
    assert f"[{rule}]" in answer.text


# -- who sees what -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("who", "status"),
    [("ada", 200), ("olu", 200), ("sam", 200), ("tom", 404), ("ben", 404), ("kim", 404)],
)
def test_request_page_for_the_right_people(
    world: World, client: TestClient, who: str, status: int
) -> None:
    rid = world.reach(State.SUBMITTED)
    answer = page(client, who, f"requests/{rid}")
    assert answer.status_code == status
    if status == 404:
        assert "[airlock.unknown]" in answer.text
        assert "by-decile.csv" not in answer.text
    else:
        assert "by-decile.csv" in answer.text
        assert answer.headers["content-security-policy"].startswith("default-src 'none'")


def test_a_draft_is_its_authors_alone(world: World, client: TestClient) -> None:
    rid = world.reach(State.DRAFT)
    assert page(client, "ada", f"requests/{rid}").status_code == 200
    assert page(client, "olu", f"requests/{rid}").status_code == 404
    assert page(client, "olu", f"requests/{rid}/files/tables/by-decile.csv").status_code == 404


@pytest.mark.parametrize(("who", "status"), [("olu", 200), ("ben", 200), ("ada", 404)])
def test_queue_is_for_output_checkers(
    world: World, client: TestClient, who: str, status: int
) -> None:
    rid = world.reach(State.SUBMITTED)
    answer = page(client, who, "queue")
    assert answer.status_code == status
    listed = f'href="{PREFIX}requests/{rid}"' in answer.text
    assert listed is (who == "olu")  # ben is a member of the project: never its reviewer


def test_queue_shows_state_time_and_checks(world: World, client: TestClient) -> None:
    rid = world.reach(State.PARTIALLY_REVIEWED)
    text = page(client, "raj", "queue").text
    row = text[text.index(f"Request {rid}") :]
    assert "partially reviewed" in row
    assert "htn" in row
    assert "ada" in row
    assert "under a minute" in row
    assert "1 pass" in row  # the table passed the automatic checks
    assert "1 not checked" in row  # the figure: no automatic check applies


def test_home_lists_the_researchers_requests(world: World, client: TestClient) -> None:
    rid = world.reach(State.RETURNED)
    text = page(client, "ada", "").text
    assert f"Request {rid}" in text
    assert "returned" in text
    assert "Start a new request" in text
    assert f"Request {rid}" not in page(client, "tom", "").text
    assert "Review queue" in page(client, "olu", "").text


def test_home_without_a_sign_in_is_401(client: TestClient) -> None:
    refused(page(client, None, ""), 401, "auth.unauthenticated")
    refused(client.post(PREFIX + "requests", data={"project": "htn"}), 401, "auth.unauthenticated")


def test_new_request_offers_the_callers_projects(client: TestClient) -> None:
    text = page(client, "ada", "requests/new").text
    assert '<option value="htn">' in text
    assert f'name="csrf" value="{csrf(client, "ada")}"' in text
    assert "not a member of any project" in page(client, "tom", "requests/new").text


# -- buttons follow the view's actions -----------------------------------------------------


def _buttons(text: str) -> set[str]:
    return set(re.findall(r'action="[^"]*/requests/\d+/([a-z/]+)"', text))


@pytest.mark.parametrize(
    ("state", "who", "expected"),
    [
        (State.DRAFT, "ada", {"groups", "files", "files/delete", "submit", "withdraw", "comments"}),
        (State.SUBMITTED, "ada", {"comments"}),
        (State.SUBMITTED, "olu", {"vote", "review", "return", "comments"}),
        (State.PARTIALLY_REVIEWED, "olu", {"return", "comments"}),  # olu's review is in
        (State.PARTIALLY_REVIEWED, "raj", {"vote", "review", "return", "comments"}),
        (State.REVIEWED, "raj", {"return", "reject", "release", "comments"}),
        (
            State.RETURNED,
            "ada",
            {"groups", "files", "files/delete", "submit", "withdraw", "comments"},
        ),
        (State.RETURNED, "olu", {"comments"}),
        (State.RELEASED, "ada", set()),
        (State.SUBMITTED, "sam", set()),
    ],
)
def test_buttons_are_the_actions_of_the_view(
    world: World, client: TestClient, state: State, who: str, expected: set[str]
) -> None:
    rid = world.reach(state)
    text = page(client, who, f"requests/{rid}").text
    assert _buttons(text) == expected
    download = f"{PREFIX}api/requests/{rid}/groups/tables/files/by-decile.csv?download=1"
    assert (download in text) is (state is State.RELEASED and who == "ada")


def test_a_conflict_is_for_a_third_checker(world: World, client: TestClient) -> None:
    rid = world.reach(State.SUBMITTED)
    world.vote_all("olu", rid)
    world.airlock.review("olu", rid)
    world.airlock.vote("pia", rid, "tables", "by-decile.csv", "request_changes")
    world.airlock.vote("pia", rid, "tables", "figure.png", "approve")
    world.airlock.review("pia", rid)
    raj = page(client, "raj", f"requests/{rid}").text
    assert _buttons(raj) == {"vote", "review", "return", "reject", "comments"}
    assert re.findall(r'name="name" value="([^"]+)"', raj) == ["by-decile.csv"]
    assert "conflicted" in raj
    assert _buttons(page(client, "olu", f"requests/{rid}").text) == {
        "return",
        "reject",
        "comments",
    }


def test_author_sees_public_comments_of_a_return(world: World, client: TestClient) -> None:
    rid = world.reach(State.RETURNED)
    world.airlock.comment("olu", rid, "between checkers only", visibility="private")
    text = page(client, "ada", f"requests/{rid}").text
    assert "Please round the counts to 5." in text
    assert "between checkers only" not in text
    assert "returned this request" in text
    assert "between checkers only" in page(client, "olu", f"requests/{rid}").text


# -- the file page: table, flags and report ------------------------------------------------


def test_file_page_highlights_flagged_cells(world: World, client: TestClient) -> None:
    rid = world.draft()
    world.airlock.add_file("ada", rid, "tables", "small.csv", SMALL)
    world.airlock.submit("ada", rid)
    answer = page(client, "olu", f"requests/{rid}/files/tables/small.csv")
    assert answer.status_code == 200
    cells = re.findall(
        r'<td class="flag-(\w+)">([^<]*)<span class="mark">(\w+)</span>', answer.text
    )
    assert cells == [("fail", "4", "threshold")]
    assert "threshold" in answer.text[answer.text.index('id="flags"') :]
    assert "The report as JSON" in answer.text
    assert "Approve this file" in answer.text
    assert (
        "Approve this file"
        not in page(client, "ada", f"requests/{rid}/files/tables/small.csv").text
    )


def test_file_page_of_a_figure_and_an_unknown_file(world: World, client: TestClient) -> None:
    rid = world.reach(State.SUBMITTED)
    figure = page(client, "olu", f"requests/{rid}/files/tables/figure.png").text
    assert 'src="data:image/png;base64,' in figure
    refused(
        page(client, "olu", f"requests/{rid}/files/tables/nothing.csv"), 404, "airlock.unknown-file"
    )
    refused(page(client, "tom", f"requests/{rid}/files/tables/figure.png"), 404, "airlock.unknown")


# -- every form ----------------------------------------------------------------------------


def _rid(answer: httpx.Response) -> int:
    assert answer.status_code == 303, answer.text[:500]
    match = re.search(r"/requests/(\d+)", answer.headers["location"])
    assert match
    return int(match.group(1))


def test_the_whole_flow_through_the_forms(world: World, client: TestClient) -> None:
    rid = _rid(post(client, "ada", "requests", {"project": "htn"}))
    files = [("files", ("by-decile.csv", TABLE)), ("files", ("notes.txt", b"how"))]
    added = post(client, "ada", f"requests/{rid}/files", {"group": "tables"}, files)
    assert added.headers["location"].endswith(f"requests/{rid}?done=added")
    post(
        client,
        "ada",
        f"requests/{rid}/files",
        {"group": "tables", "kind": "supporting"},
        [("files", ("code.txt", b"print(1)"))],
    )
    view = world.airlock.get("ada", rid)
    kinds = {f["name"]: f["kind"] for f in view["groups"][0]["files"]}
    assert kinds == {"by-decile.csv": "output", "notes.txt": "output", "code.txt": "supporting"}
    post(client, "ada", f"requests/{rid}/files/delete", {"group": "tables", "name": "notes.txt"})
    group = {"group": "tables", "context": "By decile", "controls": "Rounded to 5"}
    assert post(client, "ada", f"requests/{rid}/groups", group).status_code == 303
    assert (
        "Your request was submitted" in page(client, "ada", f"requests/{rid}?done=submitted").text
    )
    _rid(post(client, "ada", f"requests/{rid}/submit"))
    assert world.airlock.get("ada", rid)["state"] == "submitted"

    vote = {"group": "tables", "name": "by-decile.csv", "vote": "request_changes", "back": "file"}
    voted = post(client, "olu", f"requests/{rid}/vote", vote)
    assert voted.headers["location"].endswith(
        f"requests/{rid}/files/tables/by-decile.csv?done=voted"
    )
    comment = {"text": "Round please", "visibility": "private", "group": "tables"}
    post(client, "olu", f"requests/{rid}/comments", comment)
    post(client, "olu", f"requests/{rid}/return", {"comment": "Please round to 5."})
    assert world.airlock.get("ada", rid)["state"] == "returned"

    post(
        client,
        "ada",
        f"requests/{rid}/files",
        {"group": "tables"},
        [("files", ("by-decile.csv", SMALL.replace(b"4", b"5")))],
    )
    post(client, "ada", f"requests/{rid}/comments", {"text": "Rounded now"})
    post(client, "ada", f"requests/{rid}/submit")
    for checker in ("olu", "pia"):
        vote = {"group": "tables", "name": "by-decile.csv", "vote": "approve"}
        post(client, checker, f"requests/{rid}/vote", vote)
        _rid(post(client, checker, f"requests/{rid}/review"))
    released = post(client, "pia", f"requests/{rid}/release")
    assert released.headers["location"].endswith("?done=released")
    assert world.airlock.get("ada", rid)["state"] == "released"
    text = page(client, "ada", f"requests/{rid}").text
    link = f"{PREFIX}api/requests/{rid}/groups/tables/files/by-decile.csv?download=1"
    assert link in text
    assert client.get(link, headers=headers("ada")).content == SMALL.replace(b"4", b"5")


def test_withdraw_and_reject(world: World, client: TestClient) -> None:
    rid = world.reach(State.DRAFT)
    post(client, "ada", f"requests/{rid}/withdraw")
    assert world.airlock.get("ada", rid)["state"] == "withdrawn"
    rid = world.reach(State.REVIEWED)
    post(client, "raj", f"requests/{rid}/reject", {"comment": "Too small."})
    assert world.airlock.get("ada", rid)["state"] == "rejected"
    assert "Too small." in page(client, "ada", f"requests/{rid}").text


# -- refusals render with their rule, never a 500 ------------------------------------------


def test_refusals_render_on_the_page(world: World, client: TestClient) -> None:
    rid = world.draft()
    world.airlock.add_file("ada", rid, "figures", "f.png", b"\x89PNG" + bytes(8))
    refused(post(client, "ada", f"requests/{rid}/submit"), 409, "airlock.group-incomplete")
    bad = [("files", ("run.exe", b"MZ"))]
    refused(
        post(client, "ada", f"requests/{rid}/files", {"group": "x"}, bad), 400, "airlock.file-type"
    )
    refused(post(client, "ada", f"requests/{rid}/files", {"group": "x"}), 400, "pages.no-file")
    refused(post(client, "ada", "requests", {"project": "htn"}), 409, "airlock.open-request")
    refused(post(client, "tom", "requests", {"project": "htn"}), 404, "project.unknown")
    answer = post(client, "ada", f"requests/{rid}/submit")
    assert "by-decile.csv" in answer.text  # the request page again, with the message

    rid = world.reach(State.SUBMITTED)
    refused(post(client, "olu", f"requests/{rid}/review"), 409, "airlock.votes-missing")
    refused(
        post(client, "olu", f"requests/{rid}/return", {"comment": " "}),
        400,
        "airlock.comment-empty",
    )
    refused(post(client, "olu", f"requests/{rid}/release"), 409, "airlock.invalid-transition")
    refused(
        post(
            client,
            "olu",
            f"requests/{rid}/vote",
            {"group": "tables", "name": "notes.txt", "vote": "approve", "back": "file"},
        ),
        400,
        "airlock.vote-supporting",
    )
    refused(post(client, "ada", f"requests/{rid}/submit"), 409, "airlock.invalid-transition")
    refused(post(client, "tom", f"requests/{rid}/withdraw"), 404, "airlock.unknown")
    refused(post(client, "olu", f"requests/{rid}/vote", {"vote": "maybe"}), 400, "airlock.vote")


def test_csrf_is_checked_on_every_post(world: World, client: TestClient) -> None:
    rid = world.reach(State.DRAFT)
    refused(post(client, "ada", f"requests/{rid}/submit", token=""), 403, "pages.csrf")
    refused(
        post(client, "ada", f"requests/{rid}/submit", token=csrf(client, "tom")), 403, "pages.csrf"
    )
    refused(post(client, "ada", "requests", {"project": "htn"}, token="0" * 64), 403, "pages.csrf")
    assert world.airlock.get("ada", rid)["state"] == "draft"


def test_bad_forms_are_4xx(world: World, client: TestClient) -> None:
    rid = world.reach(State.DRAFT)
    url = f"{PREFIX}requests/{rid}/submit"
    broken = client.post(
        url,
        content=b"--b\r\nnonsense",
        headers={**headers("ada"), "content-type": "multipart/form-data; boundary=b"},
    )
    refused(broken, 400, "pages.form")
    json_body = client.post(url, json={"csrf": "x"}, headers=headers("ada"))
    refused(json_body, 400, "pages.form")
    huge = client.post(
        url,
        content=b"x",
        headers={
            **headers("ada"),
            "content-length": str(10**12),
            "content-type": "application/x-www-form-urlencoded",
        },
    )
    assert huge.status_code == 413
    assert page(client, "ada", "requests/0").status_code == 422


def test_multipart_parser() -> None:
    body = (
        b'--xyz\r\nContent-Disposition: form-data; name="csrf"\r\n\r\nabc\r\n'
        b'--xyz\r\nContent-Disposition: form-data; name="files"; filename="a b.csv"\r\n'
        b"Content-Type: text/csv\r\n\r\n--xy\r\n\x00\xff\r\n"
        b'--xyz\r\nContent-Disposition: form-data; name="files"; filename=""\r\n\r\n\r\n'
        b"--xyz--\r\n"
    )
    form = parse_multipart(body, 'multipart/form-data; boundary="xyz"')
    assert form.fields == {"csrf": "abc"}
    assert form.files == [("a b.csv", b"--xy\r\n\x00\xff")]
    with pytest.raises(InvalidInput, match="not terminated"):
        parse_multipart(body[: -len(b"--xyz--\r\n")], "multipart/form-data; boundary=xyz")
    with pytest.raises(InvalidInput, match="no multipart boundary"):
        parse_multipart(body, "multipart/form-data")


def test_with_the_hubs_signed_cookie(world: World) -> None:
    """The product's authenticator: a browser signed in through the hub's OAuth uses the
    pages with its cookie; a cross-site form post with that cookie but no token is refused."""
    rid = world.reach(State.REVIEWED)

    class FakeHub:
        cookie_name = "jupyterhub-services-airlock"
        cookie_path = PREFIX
        access_scopes: frozenset[str] = frozenset()

        async def user_for_token(self, token: str, sync: bool = False) -> dict[str, str]:
            return {"name": "olu", "kind": "user"} if token == "olu-token" else {}  # noqa: S105

    auth = HubAuthenticator(FakeHub())
    settings = Settings.model_validate(
        {
            "airlock_dir": world.airlock.files.root,
            "registry_url": str(world.store.engine.url),
            "SDE_GATEWAY_PREFIX": PREFIX,
        }
    )
    app = create_app(settings, auth, store=world.store)
    with TestClient(app, raise_server_exceptions=False) as browser:
        browser.cookies.set(auth.cookie_name, auth.sign("olu-token"))
        shown = browser.get(f"{PREFIX}requests/{rid}")
        assert shown.status_code == 200
        assert "Release the files" in shown.text
        forged = browser.post(
            f"{PREFIX}requests/{rid}/release",
            content=b"",
            headers={
                "Origin": "https://attacker.example",
                "Content-Type": "application/x-www-form-urlencoded",
            },
        )
        refused(forged, 403, "pages.csrf")
        assert world.airlock.get("olu", rid)["state"] == "reviewed"
        token = re.search(r'name="csrf" value="([0-9a-f]+)"', shown.text)
        assert token
        done = browser.post(
            f"{PREFIX}requests/{rid}/release", data={"csrf": token.group(1)}, follow_redirects=False
        )
        assert done.status_code == 303
        assert world.airlock.get("olu", rid)["state"] == "released"


def test_what_people_write_is_escaped(world: World, client: TestClient) -> None:
    rid = world.reach(State.SUBMITTED)
    world.airlock.comment("olu", rid, "<script>alert(1)</script>", visibility="private")
    text = page(client, "olu", f"requests/{rid}").text
    assert "<script>" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
