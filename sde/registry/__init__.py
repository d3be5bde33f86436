"""The registry: project keys, audit log, budgets; users and applications later."""

from sde.registry.db import Base, open_registry, registry_url_beside

__all__ = ["Base", "open_registry", "registry_url_beside"]
