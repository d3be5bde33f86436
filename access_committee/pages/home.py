"""The committee's home page: what the caller may do here, by role."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from access_committee.pages.base import Page, get_page
from access_committee.pages.queues import expiry_warnings

router = APIRouter(include_in_schema=False)


def _home(page: Page) -> Response:
    return page.render("home.html", banners=expiry_warnings(page))


@router.get("/")
async def home(request: Request) -> Response:
    return await get_page(request, _home)
