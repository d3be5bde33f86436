"""What the workbench's web services share (the gateway, the airlock, the committee).

:mod:`sde.web.shell` builds a service's FastAPI app with the parts API.md makes common to
all three: ``healthz``, ``openapi.json``, the one error map, authentication through the
hub (token header or the hub's OAuth cookie), and ``api/me``.
"""
