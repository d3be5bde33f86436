"""Where older code looks for the transpiler: it lives in :mod:`sde.proxy.transpile`.

There is one transpiler (sqlglot plus the fixes in its ``FIXES`` tuple), the one
the proxy runs; this module only re-exports it.

>>> transpile("SELECT 1 AS one", "spark")
'SELECT 1 AS one'
"""

from __future__ import annotations

from sde.proxy.transpile import DIALECTS, FIXES, Fix, exact_percentiles_on_spark, transpile

__all__ = ["DIALECTS", "FIXES", "Fix", "exact_percentiles_on_spark", "transpile"]
