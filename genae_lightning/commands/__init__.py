"""The ``genae`` commands, one module each; ``genae_lightning.cli`` wires them by name.

- :mod:`~genae_lightning.commands.fit`: ``fit``/``validate``/``test``/``predict`` (LightningCLI),
  with :mod:`~genae_lightning.commands.resume` (resume checks) and
  :mod:`~genae_lightning.commands.config_files` (config names and composition);
- :mod:`~genae_lightning.commands.sample`, :mod:`~genae_lightning.commands.evaluate`,
  :mod:`~genae_lightning.commands.traverse`: read a checkpoint (and its data) through the one
  helper :mod:`~genae_lightning.commands.checkpoints`;
- :mod:`~genae_lightning.commands.report`, :mod:`~genae_lightning.commands.train_features`,
  :mod:`~genae_lightning.commands.configs`.
"""
