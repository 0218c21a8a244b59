"""The public facade: every public name exported and reported as asyncgen.X."""

import subprocess
import sys
import types

import pytest

import asyncgen


def test_all_public_names_are_exported() -> None:
    """Every public attribute of the package is listed in __all__ and vice versa (names
    load on first use: each one listed resolves, and nothing else public appears)."""
    for name in asyncgen.__all__:
        getattr(asyncgen, name)
    public = {
        name
        for name in dir(asyncgen)
        if not name.startswith("_") and not isinstance(getattr(asyncgen, name), types.ModuleType)
    }
    assert public | {"__version__", "sync"} == set(asyncgen.__all__)
    with pytest.raises(AttributeError, match="no attribute 'generat'"):
        asyncgen.generat  # type: ignore[attr-defined]  # noqa: B018


def test_import_loads_no_layer_until_used() -> None:
    """import asyncgen loads neither the LLM layer, the queue, Redis nor rich; a name
    loads its layer (in a fresh interpreter)."""
    code = (
        "import sys, asyncgen\n"
        "heavy = ('asyncgen.llm', 'asyncgen.queue', 'redis', 'rich', 'httpx', 'uvicorn')\n"
        "assert not [m for m in heavy if m in sys.modules], sys.modules.keys()\n"
        "asyncgen.generate\n"
        "assert 'asyncgen.llm' in sys.modules and 'redis' not in sys.modules\n"
        "asyncgen.open_queue('sqlite:///:memory:')\n"
        "assert 'redis' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_public_objects_report_the_public_module() -> None:
    """Classes and functions say they live in asyncgen, not in a private module."""
    for name in asyncgen.__all__:
        obj = getattr(asyncgen, name)
        if isinstance(obj, type | types.FunctionType):
            assert obj.__module__ == "asyncgen", name


def test_the_layers_say_truly_what_asyncgen_re_exports() -> None:
    """Every public name of asyncgen.llm is in asyncgen (its docstring says so); the
    queue's everyday names are too, as its docstring lists."""
    import asyncgen.llm
    import asyncgen.queue

    llm_names = {
        name
        for name, value in vars(asyncgen.llm).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert "ChatClient" in llm_names
    assert llm_names <= set(asyncgen.__all__)
    everyday = {
        "open_queue",
        "JobQueue",
        "Worker",
        "open_worker",
        "JobRecord",
        "JobState",
        "QueueStatistics",
    }
    assert everyday <= set(asyncgen.__all__) & set(asyncgen.queue.__all__)
    assert all(name in (asyncgen.queue.__doc__ or "") for name in everyday)
