"""Studies: compare methods the way papers do, on one machine or many (docs/studies.md).

Seeds, a selection grid scored on validation, test numbers of the selected settings, and equal
step and wall-clock budgets:

- :mod:`~genae_lightning.studies.spec`: a study file (YAML) -> a validated ``Study``
  (:mod:`~genae_lightning.studies.definition`); bundled studies (``configs/studies/``) by name.
- :mod:`~genae_lightning.studies.plan`: a ``Study`` -> ``Trial`` s (stable ids, ``genae fit``
  and ``genae evaluate`` arguments) and the selection on validation.
- :mod:`~genae_lightning.studies.store`: the study's state on disk (one atomically written
  record per trial, exclusive claims with heartbeats), safe on a network filesystem.
- :mod:`~genae_lightning.studies.trial`: one trial as a normal run (``execute(Job)``).
- :mod:`~genae_lightning.studies.launchers`: where trials run (``local``: a process pool).
- :mod:`~genae_lightning.studies.run`: the driver (``run_study``), behind ``genae study run``.
"""
