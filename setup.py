"""Packaging beyond pyproject.toml: ship configs/ inside the package as genae_lightning.configs.

The repository keeps its configs at the top (``genae fit --config configs/...`` from a clone);
installed, the same files live in ``genae_lightning/configs/``, where ``genae fit --config
<name>`` and ``genae configs`` find them (see genae_lightning/commands/config_files.py).
"""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["genae_lightning*"]), "genae_lightning.configs"],
    package_dir={"genae_lightning.configs": "configs"},
    package_data={"genae_lightning.configs": ["*.yaml", "*/*.yaml"]},
)
