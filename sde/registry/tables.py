"""Imports every module that declares registry tables, so ``create_all`` sees them all.

A module that adds tables to the registry adds one import line here.
"""

import sde.dp.ledger
import sde.registry.audit_log
import sde.registry.keys
import sde.sdc.ledger_tables  # noqa: F401  (differencing ledger)
