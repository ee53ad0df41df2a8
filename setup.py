"""Installation shim: the metadata is PEP 621 ``[project]`` in pyproject.toml."""

from setuptools import setup

setup()
