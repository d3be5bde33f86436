"""JupyterHub's configuration file for the workbench: ``jupyterhub -f`` this file.

``sde hub`` does that for you. Everything is read from the settings (``SDE_REGISTRY_URL``,
``SDE_SECRET_KEY``, ``SDE_GATEWAY_URL`` and the hub's own ``SDE_HUB_*``, see
:class:`sde.settings.HubSettings`); the work is done in :func:`jupyter_config.hub.configure`.
"""

from typing import Any

from jupyter_config.hub import configure

c: Any = get_config()  # type: ignore[name-defined]  # noqa: F821 (traitlets provides it)
configure(c)
