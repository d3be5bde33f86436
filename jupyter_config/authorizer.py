"""The single-user server's authorizer: no file downloads, no conversions.

Passed to every notebook server as ``--ServerApp.authorizer_class``. On top of JupyterHub's
own check (the caller may access this server), it refuses the handlers that hand a file out
of the workbench as a download: ``/files/...`` (raw files, ``?download=1``) and
``/nbconvert/...`` (a notebook converted to HTML, PDF, ...). Terminals are off
(``--ServerApp.terminals_enabled=False``) and JupyterLab's download menu items are disabled
and locked (``jupyter_config/server/labconfig/page_config.json``).

This is friction, not an egress control: code in a kernel can still print a file. What
leaves the workbench leaves through the airlock, which is the boundary.
"""

from __future__ import annotations

from typing import Any

from jupyterhub.singleuser.extension import JupyterHubAuthorizer

#: Handler classes refused whatever the caller may do otherwise.
REFUSED_HANDLERS: frozenset[str] = frozenset(
    # /files/: AuthenticatedFileHandler for files on disk (the default contents
    # manager), FilesHandler for other contents managers.
    {"AuthenticatedFileHandler", "FilesHandler", "NbconvertFileHandler", "NbconvertPostHandler"}
)
#: Authorization resources refused (the nbconvert handlers and API).
REFUSED_RESOURCES: frozenset[str] = frozenset({"nbconvert"})


class SDEAuthorizer(JupyterHubAuthorizer):
    """JupyterHub's authorizer, minus file downloads and nbconvert."""

    def is_authorized(self, handler: Any, user: Any, action: str, resource: str) -> bool:
        if refused(type(handler).__name__, resource):
            self.log.warning(
                "Refused %s %s to %s (downloads leave through the airlock)",
                action,
                resource,
                getattr(user, "username", "?"),
            )
            return False
        return bool(super().is_authorized(handler, user, action, resource))


def refused(handler_class: str, resource: str) -> bool:
    """Whether a request to ``handler_class`` on ``resource`` is refused.

    >>> refused("FilesHandler", "contents"), refused("ContentsHandler", "contents")
    (True, False)
    >>> refused("NbconvertRootHandler", "nbconvert")
    True
    """
    return handler_class in REFUSED_HANDLERS or resource in REFUSED_RESOURCES
