"""The hosted workbench's JupyterHub: configuration, authenticator, spawner and authorizer.

* :mod:`jupyter_config.jupyterhub_config`: the file ``jupyterhub -f`` reads (``sde hub`` runs it);
* :class:`sde.settings.HubSettings`: the hub's own settings (``SDE_HUB_*``);
* :mod:`jupyter_config.authenticator`: password + TOTP against the registry (sde.accounts);
* :mod:`jupyter_config.spawner`: who gets a notebook server, for which project, as which OS user;
* :mod:`jupyter_config.authorizer`: the single-user server's refusals (files, nbconvert).

Importing this package imports nothing heavy: the single-user servers import the authorizer.
"""
