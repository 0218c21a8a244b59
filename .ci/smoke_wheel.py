"""Run from a clean venv holding only the built wheel (not the checkout): the package's
data files are in it and work. The Lua scripts drive a real Redis queue, the dashboard
renders its templates and serves its static files, and ``py.typed`` is shipped."""

from __future__ import annotations

import asyncio
import importlib.resources
import os
import sys
import tempfile
from pathlib import Path

import asyncgen
from asyncgen.queue import open_queue, open_worker, task
from asyncgen.testing import RedisServer

here = Path(asyncgen.__file__).resolve().parent
if "site-packages" not in here.parts:
    sys.exit(f"asyncgen was imported from {here}, not from the installed wheel")
if not (here / "py.typed").exists():
    sys.exit("py.typed is missing from the wheel")


@task(name="double")
async def double(n: int) -> int:
    return 2 * n


async def redis_queue(url: str) -> None:
    queue = open_queue(f"{url}?queue=smoke")
    queue.register(double)
    ids = await queue.submit_many([double.call(n) for n in range(20)])
    async with open_worker(queue):
        assert await queue.results(ids, timeout=60) == [2 * n for n in range(20)]
    await queue.aclose()


lua = [p.name for p in importlib.resources.files("asyncgen.queue").joinpath("_lua").iterdir()]
assert "claim.lua" in lua, lua
with RedisServer() as server:
    asyncio.run(redis_queue(server.url))
print(f"redis queue: 20 jobs through {len(lua)} Lua scripts")

from starlette.testclient import TestClient  # noqa: E402  (the dashboard extra)

from asyncgen.dashboard import create_app  # noqa: E402

with tempfile.TemporaryDirectory() as folder:
    os.chdir(folder)
    with TestClient(create_app("sqlite:///smoke.db")) as browser:
        page = browser.get("/")
        assert page.status_code == 200, page.status_code
        assert "asyncgen" in page.text
        for path in ("/static/dashboard.css", "/static/dashboard.js", "/static/run.js"):
            assert browser.get(path).status_code == 200, path
print("dashboard: templates and static files served")
