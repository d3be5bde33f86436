"""SDE Workbench: research on pseudonymised OMOP CDM v5.4 data inside approved scope.

The researcher's whole surface is small: :func:`connect`, then ``.sql()``,
``.explain()``, ``.sql_dp()`` and ``.budget()`` on the connection, plus
:mod:`sde.sdc` for checking outputs and :func:`sde.airlock.submit` to ask for them to leave.
See ``docs/`` for the tour.
"""

from __future__ import annotations

from typing import Any

from sde import errors

__version__ = "0.1.0"


def connect(*args: Any, **kwargs: Any) -> Any:
    """Open a connection scoped to one approved project (see :mod:`sde.connection`)."""
    from sde.connection import connect as _connect

    return _connect(*args, **kwargs)


def __getattr__(name: str) -> Any:
    # Heavy subpackages load on first use so that `import sde` stays fast.
    if name in {"sdc", "dp", "omop", "backends", "proxy", "registry", "airlock"}:
        import importlib

        return importlib.import_module(f"sde.{name}")
    if name == "Scope":
        from sde.scope import Scope

        return Scope
    raise AttributeError(f"module 'sde' has no attribute {name!r}")


__all__ = ["Scope", "__version__", "connect", "errors"]
