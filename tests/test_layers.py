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


def rooms(folder: Path, package: str) -> set[str]:
    """The package's rooms: its folders, and a folder of folders by its folders."""
    found: set[str] = set()
    for child in sorted(folder.iterdir()):
        if (child / "__init__.py").exists():
            inner = rooms(child, f"{package}.{child.name}")
            found |= inner if inner else {f"{package}.{child.name}"}
    return found


def test_every_room_has_its_place_in_the_layers() -> None:
    """The layers contract names every room (asyncgen/llm/ by its three rooms), or a
    contract of its own keeps it apart: a new folder cannot slip past the layers."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    contracts = config["tool"]["importlinter"]["contracts"]
    (layers,) = [c for c in contracts if c["type"] == "layers"]
    placed = {
        name.strip() for layer in layers["layers"] for name in layer.replace(":", "|").split("|")
    }
    apart = {m for c in contracts if c["type"] == "forbidden" for m in c["source_modules"]}
    found = rooms(ROOT / "asyncgen", "asyncgen")
    assert {"asyncgen.llm.client", "asyncgen.queue", "asyncgen.sim"} <= found
    assert found | {"asyncgen.sync"} == placed | apart  # sync.py: a face, with its place
