"""Imports every module that declares registry tables, so ``Base.metadata`` holds them all.

A module that adds tables adds one import line here, and a migration in ``migrations/``
(a test compares the two).
"""

import sde.registry.airlock
import sde.registry.audit_log
import sde.registry.budget
import sde.registry.committee
import sde.registry.disclosure
import sde.registry.keys
import sde.registry.people
import sde.registry.projects  # noqa: F401
