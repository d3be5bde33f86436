"""``GET api/me``: the caller, their roles and their projects."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import APIRouter

from sde.accounts import get_user, projects_of
from sde.gateway.deps import CurrentUser, GatewayState

router = APIRouter(prefix="/api", tags=["me"])


@router.get("/me", summary="The caller, their roles and their projects")
def me(user: CurrentUser, gateway: GatewayState) -> dict[str, Any]:
    info = get_user(gateway.store, user)
    today = dt.datetime.now(dt.UTC).date()
    projects = [
        {
            "project": p.slug,
            "access": p.access,
            "status": p.effective_status(today),
            "expires": p.expires.isoformat() if p.expires else None,
            "version": p.version,
        }
        for p in projects_of(gateway.store, user)
    ]
    return {"user": user, "roles": sorted(info.roles), "projects": projects}
