"""The sync bridge: blocking twins from threads, from running loops, across calls."""

from __future__ import annotations

import asyncio
import inspect
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
import structlog

from asyncgen import ServerError, blocking


async def add(a: int, b: int = 1, *, label: str = "sum") -> str:
    """Add two numbers after a short wait."""
    await asyncio.sleep(0.01)
    return f"{label}={a + b}"


async def nap(seconds: float, tag: int) -> tuple[int, int]:
    await asyncio.sleep(seconds)
    return tag, threading.get_ident()


async def fail(status: int) -> None:
    raise ServerError("upstream down", status=status)


async def loop_id() -> int:
    return id(asyncio.get_running_loop())


async def bound_job() -> object:
    return structlog.contextvars.get_contextvars().get("job_id")


async def nested() -> str:
    return blocking(add)(1)


class TestTwin:
    def test_same_signature_name_and_doc(self) -> None:
        """The twin looks like the coroutine function to people and tools."""
        twin = blocking(add)
        assert twin.__name__ == "add"
        assert twin.__doc__ == add.__doc__
        assert inspect.signature(twin) == inspect.signature(add)

    def test_returns_the_value(self) -> None:
        """Positional and keyword arguments go through; the value comes back."""
        assert blocking(add)(2, 3, label="total") == "total=5"

    def test_original_exception_type_propagates(self) -> None:
        """The caller sees the coroutine's own exception, fields intact."""
        with pytest.raises(ServerError, match="upstream down") as caught:
            blocking(fail)(502)
        assert caught.value.status == 502

    def test_refuses_sync_functions(self) -> None:
        """Only coroutine functions can be bridged."""
        with pytest.raises(TypeError, match="async def"):
            blocking(len)  # type: ignore[arg-type]

    def test_calling_from_the_bridge_loop_is_refused_not_deadlocked(self) -> None:
        """A blocking call made from inside the bridge loop raises instead of hanging."""
        with pytest.raises(RuntimeError, match="deadlock"):
            blocking(nested)()

    def test_context_variables_cross_the_bridge(self) -> None:
        """structlog bindings made by the caller are visible to the coroutine."""
        with structlog.contextvars.bound_contextvars(job_id="job-7"):
            assert blocking(bound_job)() == "job-7"


class TestConcurrencyAndReuse:
    def test_sixteen_threads_at_once(self) -> None:
        """16 threads calling at once all get their own answers, run concurrently."""
        twin = blocking(nap)
        started = time.perf_counter()
        with ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(lambda i: twin(0.3, i), range(16)))
        wall = time.perf_counter() - started
        assert [tag for tag, _ in answers] == list(range(16))
        assert len({ident for _, ident in answers}) == 1  # one loop thread served all
        assert wall < 0.5 * 16 * 0.3  # sequential would take 4.8 s

    async def test_from_inside_a_running_loop(self) -> None:
        """Sync code called from a running loop (Jupyter, async routes) still works."""
        assert blocking(add)(40, 2) == "sum=42"

    def test_one_persistent_loop(self) -> None:
        """Every call runs on the same loop, so resources built on it survive."""
        twin = blocking(loop_id)
        assert len({twin() for _ in range(5)}) == 1

    def test_http_connection_is_reused_between_sync_calls(self, http_server: str) -> None:
        """A client made in one sync call keeps its keep-alive connection for the next."""
        clients: list[httpx.AsyncClient] = []

        async def fetch() -> str:
            if not clients:
                clients.append(httpx.AsyncClient())
            response = await clients[0].get(http_server)
            return response.text

        twin = blocking(fetch)
        peers = {twin() for _ in range(5)}
        blocking(clients[0].aclose)()
        assert len(peers) == 1  # the same client port every time: one connection

    def test_works_in_a_forked_child(self) -> None:
        """After os.fork the child starts its own loop and the twin still works."""
        script = (
            "import asyncio, os, asyncgen\n"
            "async def f(x):\n    await asyncio.sleep(0); return x * 2\n"
            "twin = asyncgen.blocking(f)\n"
            "assert twin(1) == 2\n"
            "pid = os.fork()\n"
            "if pid == 0:\n    os._exit(0 if twin(21) == 42 else 3)\n"
            "_, status = os.waitpid(pid, 0)\n"
            "assert os.waitstatus_to_exitcode(status) == 0, status\n"
            "assert twin(2) == 4\n"
        )
        done = subprocess.run(
            [sys.executable, "-W", "ignore::DeprecationWarning", "-c", script],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr


class _PeerEcho(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        body = str(self.client_address[1]).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        return None


@pytest.fixture
def http_server() -> Iterator[str]:
    """A real HTTP/1.1 keep-alive server on 127.0.0.1 that answers with the client port."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _PeerEcho)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
