"""Every data-layer module: docstring, __all__, Google-style docstrings, and runnable examples (doctest)."""

from __future__ import annotations

import doctest
import importlib
import inspect

import pytest

MODULES = [
    "padless.data",
    "padless.data.ragged",
    "padless.data._checks",
    "padless.data._packing",
    "padless.data._storage",
    "padless.data.constraints",
    "padless.data.samplers",
    "padless.data._cuts",
    "padless.data.waste",
    "padless.data.parquet",
    "padless.datasets",
    "padless.data.ts",
    "padless.data.labels",
    "padless.data.readers",
    "padless.data.inputs",
    "padless.datasets._builtin",
]


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("PADLESS_CACHE", str(tmp_path / "cache"))


@pytest.mark.parametrize("name", MODULES)
def test_module_hygiene(name):
    module = importlib.import_module(name)
    doc = inspect.getdoc(module) or ""
    assert "Owns" in doc and "Does not own" in doc and "Example" in doc
    assert module.__all__, name
    for public in module.__all__:
        obj = getattr(module, public)
        if inspect.isfunction(obj) or inspect.isclass(obj):
            assert inspect.getdoc(obj), f"{name}.{public} has no docstring"


@pytest.mark.parametrize("name", MODULES)
def test_examples_run(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0
    assert result.attempted > 0


def test_public_names_reexported():
    data = importlib.import_module("padless.data")
    for name in ("RaggedArray", "BucketBatchSampler", "ExactLengthBatchSampler", "RandomBatchSampler",
                 "MaxCount", "MaxSteps", "waste_report", "compare_batching", "format_table", "WasteReport",
                 "read_parquet", "write_parquet", "concatenate"):
        assert name in data.__all__ and hasattr(data, name)
