"""Run a page's Python blocks in order, in one namespace, as a reader would in a REPL.

Usage: ``python tests/run_blocks.py BLOCKS.json``, where the file holds a list of
``{"where": "page.md:12", "code": "..."}``. A block with top-level ``await`` runs on one
event loop kept for the whole page (so a client or queue opened in one block serves the
next); any other block runs as plain code with no loop running (``asyncio.run`` works in
it). The first failing block stops the page with its traceback and exit status 1.
"""

from __future__ import annotations

import ast
import asyncio
import inspect
import json
import sys
import traceback
from typing import Any


def main(path: str) -> int:
    with open(path, encoding="utf-8") as source:
        blocks = json.load(source)
    namespace: dict[str, Any] = {"__name__": "__main__"}
    loop = asyncio.new_event_loop()
    try:
        for block in blocks:
            try:
                code = compile(
                    block["code"], block["where"], "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
                )
                if code.co_flags & inspect.CO_COROUTINE:
                    loop.run_until_complete(eval(code, namespace))
                else:
                    exec(code, namespace)
            except BaseException:
                print(f"block at {block['where']} failed:", file=sys.stderr)
                traceback.print_exc()
                return 1
            print(f"ok {block['where']}", flush=True)
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
