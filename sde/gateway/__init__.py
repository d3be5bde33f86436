"""The query gateway: a FastAPI service (a JupyterHub managed service in the deployment).

It identifies the caller (:mod:`sde.gateway.auth`), checks that they are an active member
of an active, unexpired project (:func:`sde.accounts.check_project_access`, on every
request), runs ``sql``, ``explain``, ``sql_dp`` and ``budget`` on an embedded
:class:`~sde.connection.Connection` per caller over the project's shared extract
(:mod:`sde.gateway.pool`), answers Arrow or JSON (:mod:`sde.gateway.results`) and maps
``sde.errors`` to HTTP in one place (:mod:`sde.gateway.errors`). ``docs/gateway.md`` has
the routes.
"""

from sde.gateway.app import create_app

__all__ = ["create_app"]
