"""The layer contracts in pyproject.toml cover every core module (lint-imports checks them)."""

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_core_module_is_in_the_core_contract() -> None:
    """A new asyncgen/_*.py must be listed, or the contract would not look at it."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    contracts = config["tool"]["importlinter"]["contracts"]
    [core] = [c for c in contracts if c["name"] == "the core imports nothing above it"]
    on_disk = {
        f"asyncgen.{path.stem}"
        for path in (ROOT / "asyncgen").glob("_*.py")
        if path.stem not in ("__init__", "__main__")
    }
    assert set(core["source_modules"]) == on_disk
