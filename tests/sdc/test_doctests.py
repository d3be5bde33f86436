"""The examples in sde.sdc's docstrings run (docs that cannot drift)."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import sde.sdc

MODULES = sorted(m.name for m in pkgutil.walk_packages(sde.sdc.__path__, prefix="sde.sdc."))


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
