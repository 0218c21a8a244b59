"""The public facade: every public name exported, sorted, and reported as asyncgen.X."""

import types

import asyncgen


def test_all_public_names_are_exported() -> None:
    """Every public attribute of the package is listed in __all__ and vice versa."""
    public = {
        name
        for name, value in vars(asyncgen).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert public | {"__version__"} == set(asyncgen.__all__)


def test_all_is_sorted() -> None:
    """__all__ is sorted, so additions are easy to review."""
    assert asyncgen.__all__ == sorted(asyncgen.__all__)


def test_public_objects_report_the_public_module() -> None:
    """Classes and functions say they live in asyncgen, not in a private module."""
    for name in asyncgen.__all__:
        obj = getattr(asyncgen, name)
        if isinstance(obj, type | types.FunctionType):
            assert obj.__module__ == "asyncgen", name
