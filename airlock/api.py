"""The airlock's JSON API (``api/requests/...``, API.md): thin routes over :class:`Airlock`.

Every route names the caller (the hub's token or OAuth cookie; 401 without), calls one
:class:`~airlock.requests.Airlock` method in the thread pool, and leaves refusals to the
service's one error map. File bytes are served with ``nosniff`` and, for types a browser
would run (HTML, SVG), a sandboxing Content-Security-Policy, so a file a researcher made
can never act in the checker's session.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from airlock.requests import Airlock
from sde.errors import InvalidInput
from sde.web.shell import api_caller

router = APIRouter(prefix="/api/requests", tags=["requests"])

RequestId = Annotated[int, Path(ge=1, le=2**31 - 1, description="The request's number.")]
GroupName = Annotated[str, Path(min_length=1, max_length=100, description="A file group.")]
FileName = Annotated[str, Path(min_length=1, max_length=255, description="A file's name.")]
Text = Annotated[str, Field(min_length=1, max_length=10_000)]

MEDIA_TYPES = {
    "csv": "text/csv",
    "parquet": "application/vnd.apache.parquet",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "png": "image/png",
    "svg": "image/svg+xml",
    "pdf": "application/pdf",
    "txt": "text/plain",
    "md": "text/markdown",
    "json": "application/json",
    "html": "text/html",
}
#: Every type a file may be served as (the OpenAPI lists them all).
_SERVED = (*MEDIA_TYPES.values(), "application/octet-stream")
#: A browser would run scripts in these: they are served in a sandbox (an opaque origin).
_ACTIVE = {"svg", "html", "pdf"}
_SANDBOX = "sandbox; default-src 'none'; img-src data:; style-src 'unsafe-inline'"


async def _caller(request: Request) -> str:
    return await api_caller(request)


def _airlock(request: Request) -> Airlock:
    airlock: Airlock = request.app.state.airlock
    return airlock


Caller = Annotated[str, Depends(_caller)]
Service = Annotated[Airlock, Depends(_airlock)]


class NewRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    project: Annotated[str, Field(min_length=1, max_length=63)]


class GroupEdit(BaseModel):
    model_config = ConfigDict(extra="forbid")
    context: Annotated[str, Field(max_length=10_000)] | None = None
    controls: Annotated[str, Field(max_length=10_000)] | None = None


class Vote(BaseModel):
    model_config = ConfigDict(extra="forbid")
    vote: Literal["approve", "request_changes"]
    #: The bytes the checker looked at: a vote on a file replaced since is refused (409).
    sha256: Annotated[str, Field(pattern="^[0-9a-f]{64}$")] | None = None


class NewComment(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: Text
    visibility: Literal["public", "private"] = "public"
    group: Annotated[str, Field(min_length=1, max_length=100)] | None = None


class Closing(BaseModel):
    model_config = ConfigDict(extra="forbid")
    comment: Text


@router.post("", status_code=201, summary="Start a draft request for a project")
async def create(body: NewRequest, user: Caller, airlock: Service) -> dict[str, Any]:
    return await run_in_threadpool(airlock.create, user, body.project)


@router.get("", summary="The requests the caller may see")
async def list_requests(user: Caller, airlock: Service) -> list[dict[str, Any]]:
    return await run_in_threadpool(airlock.list_for, user)


@router.get("/{rid}", summary="One request, as the caller may see it")
async def get(rid: RequestId, user: Caller, airlock: Service) -> dict[str, Any]:
    return await run_in_threadpool(airlock.get, user, rid)


@router.put(
    "/{rid}/groups/{group}/files/{name}",
    status_code=201,
    summary="Add or replace a file (the body is its bytes)",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
            },
        }
    },
)
async def put_file(
    rid: RequestId,
    group: GroupName,
    name: FileName,
    request: Request,
    user: Caller,
    airlock: Service,
    kind: Annotated[Literal["output", "supporting"], Query()] = "output",
) -> dict[str, Any]:
    data = await _body(request, airlock.max_file_mb, name)
    return await run_in_threadpool(airlock.add_file, user, rid, group, name, data, kind)


@router.delete("/{rid}/groups/{group}/files/{name}", status_code=204, summary="Remove a file")
async def delete_file(
    rid: RequestId, group: GroupName, name: FileName, user: Caller, airlock: Service
) -> Response:
    await run_in_threadpool(airlock.delete_file, user, rid, group, name)
    return Response(status_code=204)


@router.patch("/{rid}/groups/{group}", summary="Set a group's context and controls")
async def edit_group(
    rid: RequestId, group: GroupName, body: GroupEdit, user: Caller, airlock: Service
) -> dict[str, Any]:
    return await run_in_threadpool(
        lambda: airlock.edit_group(user, rid, group, context=body.context, controls=body.controls)
    )


@router.get(
    "/{rid}/groups/{group}/files/{name}",
    summary="A file's bytes (every read is audited)",
    response_class=Response,
    responses={
        200: {"content": {t: {} for t in (*MEDIA_TYPES.values(), "application/octet-stream")}}
    },
)
async def read_file(
    rid: RequestId,
    group: GroupName,
    name: FileName,
    user: Caller,
    airlock: Service,
    download: Annotated[bool, Query(description="The released file, as a download.")] = False,
) -> Response:
    file, data = await run_in_threadpool(
        lambda: airlock.read_file(user, rid, group, name, download=download)
    )
    kind = file.name.rsplit(".", 1)[-1].lower()
    headers = {"X-Content-Type-Options": "nosniff", "Cache-Control": "private, no-store"}
    if kind in _ACTIVE:
        headers["Content-Security-Policy"] = _SANDBOX
    disposition = "attachment" if download or kind in _ACTIVE - {"svg"} else "inline"
    headers["Content-Disposition"] = f'{disposition}; filename="{_ascii(file.name)}"'
    return Response(
        data, media_type=MEDIA_TYPES.get(kind, "application/octet-stream"), headers=headers
    )


@router.post("/{rid}/submit", summary="Submit for review (the files are checked)")
async def submit(rid: RequestId, user: Caller, airlock: Service) -> dict[str, Any]:
    return await run_in_threadpool(airlock.submit, user, rid)


@router.post("/{rid}/withdraw", summary="Withdraw a draft or returned request")
async def withdraw(rid: RequestId, user: Caller, airlock: Service) -> dict[str, Any]:
    return await run_in_threadpool(airlock.withdraw, user, rid)


@router.post("/{rid}/groups/{group}/files/{name}/vote", summary="A checker's vote on a file")
async def vote(
    rid: RequestId, group: GroupName, name: FileName, body: Vote, user: Caller, airlock: Service
) -> dict[str, Any]:
    return await run_in_threadpool(
        lambda: airlock.vote(user, rid, group, name, body.vote, sha256=body.sha256)
    )


@router.post("/{rid}/review", summary="Submit the caller's review of this turn")
async def review(rid: RequestId, user: Caller, airlock: Service) -> dict[str, Any]:
    return await run_in_threadpool(airlock.review, user, rid)


@router.post("/{rid}/comments", status_code=201, summary="Comment on the request or a group")
async def comment(
    rid: RequestId, body: NewComment, user: Caller, airlock: Service
) -> dict[str, Any]:
    return await run_in_threadpool(
        lambda: airlock.comment(user, rid, body.text, visibility=body.visibility, group=body.group)
    )


@router.post("/{rid}/return", summary="Return to the author with a public comment")
async def return_request(
    rid: RequestId, body: Closing, user: Caller, airlock: Service
) -> dict[str, Any]:
    return await run_in_threadpool(airlock.return_request, user, rid, body.comment)


@router.post("/{rid}/reject", summary="Reject a reviewed request")
async def reject(rid: RequestId, body: Closing, user: Caller, airlock: Service) -> dict[str, Any]:
    return await run_in_threadpool(airlock.reject, user, rid, body.comment)


@router.post("/{rid}/release", summary="Release a request whose output files are all approved")
async def release(rid: RequestId, user: Caller, airlock: Service) -> dict[str, Any]:
    return await run_in_threadpool(airlock.release, user, rid)


async def _body(request: Request, max_mb: float, name: str) -> bytes:
    """The request's body, refused as soon as it passes the size limit."""
    limit = int(max_mb * 1_000_000)
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise InvalidInput("limits.too-large", f"{name!r}: at most {max_mb:g} MB per file")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise InvalidInput("limits.too-large", f"{name!r}: at most {max_mb:g} MB per file")
        chunks.append(chunk)
    return b"".join(chunks)


def _ascii(name: str) -> str:
    return "".join(c if c.isascii() and c.isprintable() and c not in '"\\' else "_" for c in name)
