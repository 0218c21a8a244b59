"""Every module lives in a room that an import contract in pyproject.toml covers."""

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FACES = {"__init__.py", "__main__.py", "sync.py"}  # the package's public faces


def test_no_loose_module_at_the_package_root() -> None:
    """A module at asyncgen/'s root would sit outside every room and every contract:
    the core goes in asyncgen/core/, limits in asyncgen/limits/, and so on."""
    loose = {path.name for path in (ROOT / "asyncgen").glob("*.py")} - FACES
    assert loose == set()


def test_every_room_below_the_top_has_a_contract() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    sources = {
        module
        for contract in config["tool"]["importlinter"]["contracts"]
        for module in contract["source_modules"]
    }
    assert {"asyncgen.core", "asyncgen.limits", "asyncgen.chat", "asyncgen.llm"} <= sources
    assert {"asyncgen.queue", "asyncgen.sim"} <= sources
