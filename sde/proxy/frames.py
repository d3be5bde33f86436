"""Result frames reach the proxy already normalised.

Every project extract runs SQL through its engine's backend
(:mod:`sde.proxy.barrier`), whose results follow the one convention of
:mod:`sde.backends.frames` (integers ``Int64``, floats ``float64``, dates
``datetime64[ns]``, booleans ``boolean``, text ``object``). :func:`normalise` is
that module's, re-exported for the connection: a conforming frame passes as it is.
"""

from __future__ import annotations

from sde.backends.frames import normalise

__all__ = ["normalise"]
