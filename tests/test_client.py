"""ChatClient against the simulator over a real socket: answers, faults, secrets."""

from __future__ import annotations

import io
import re
import subprocess
import sys
from typing import Literal, cast

import httpx
import pytest

import asyncgen
from asyncgen import ChatClient
from asyncgen.llm.client._httpx import map_httpx_error
from asyncgen.testing import Fault, ModelProfile, SimConfig, SimServer, sim_server

KEY = "sk-or-v1-sim0123456789abcdef"
HI = [{"role": "user", "content": "hello there"}]
Backend = Literal["httpx", "aiohttp"]


def faulty(*faults: Fault, **profile: object) -> SimConfig:
    return SimConfig(models={"m": ModelProfile(faults=list(faults), **profile)})  # type: ignore[arg-type]


class TestAnswers:
    async def test_chat_returns_text_usage_and_cost(self, sim: SimServer, backend: Backend) -> None:
        """A plain request comes back as a Completion with usage and cost."""
        async with ChatClient(sim.base_url, KEY, backend=backend) as client:
            completion = await client.chat("m", HI)
        assert completion.text == "[m] hello there"
        assert completion.usage.total_tokens > 0
        assert completion.usage.cost is not None
        assert sim.requests("m") == 1

    async def test_connections_are_pooled(self, sim: SimServer) -> None:
        """Concurrent requests share at most max_connections connections."""
        sim.configure(SimConfig(default=ModelProfile(latency=0.05)))
        client = ChatClient(sim.base_url, max_connections=3)
        results = await asyncgen.generate(
            [{"model": "m", "prompt": str(i)} for i in range(12)], client=client, concurrency=12
        )
        await client.aclose()
        assert all(r.ok for r in results)
        assert sim.stats()["max_in_flight"] <= 3

    async def test_wrong_key_is_an_authentication_error(self, sim: SimServer) -> None:
        """A refused key raises AuthenticationError that does not show the key."""
        sim.configure(SimConfig(api_key="the-right-key"))
        async with ChatClient(sim.base_url, KEY) as client:
            with pytest.raises(asyncgen.AuthenticationError) as caught:
                await client.chat("m", HI)
        assert KEY not in str(caught.value)
        assert KEY not in repr(caught.value)

    async def test_models_endpoint(self, sim: SimServer) -> None:
        """GET /models lists the configured models."""
        sim.configure(SimConfig(models={"a": ModelProfile(), "b": ModelProfile()}))
        async with ChatClient(sim.base_url) as client:
            listing = await client.get_json("/models")
        assert [m["id"] for m in listing["data"]] == ["a", "b"]


@pytest.fixture(params=["httpx", "aiohttp"])
def backend(request: pytest.FixtureRequest) -> Backend:
    """Both HTTP backends: httpx's own pool and the aiohttp transport (fast extra)."""
    return cast(Backend, request.param)


class TestFaultsEndToEnd:
    @pytest.mark.parametrize(
        ("fault", "kind"),
        [
            (Fault(kind="status", status=503), asyncgen.ServerError),
            (Fault(kind="status", status=402), asyncgen.InsufficientCreditsError),
            (Fault(kind="status", status=400), asyncgen.BadRequestError),
            (Fault(kind="status", status=429, retry_after=2), asyncgen.RateLimitedError),
            (Fault(kind="error_body", status=502), asyncgen.ServerError),
            (Fault(kind="malformed"), asyncgen.InvalidResponseError),
            (Fault(kind="no_choices"), asyncgen.InvalidResponseError),
            (Fault(kind="reset"), asyncgen.ConnectionFailedError),
            (
                Fault(kind="status", status=429, code="insufficient_quota"),
                asyncgen.InsufficientCreditsError,
            ),
            (
                Fault(kind="status", status=503, headers={"x-should-retry": "false"}),
                asyncgen.PermanentError,
            ),
        ],
    )
    async def test_fault_maps_to_error(
        self, sim: SimServer, fault: Fault, kind: type[Exception], backend: Backend
    ) -> None:
        """Each injected fault arrives as its typed error, after exactly one request."""
        sim.configure(faulty(fault))
        async with ChatClient(sim.base_url, KEY, backend=backend) as client:
            with pytest.raises(kind):
                await client.chat("m", HI)
        assert sim.requests("m") == 1

    async def test_stall_times_out(self, sim: SimServer, backend: Backend) -> None:
        """A server that never answers ends in RequestTimeoutError after the timeout."""
        sim.configure(faulty(Fault(kind="stall", stall_seconds=30)))
        async with ChatClient(sim.base_url, timeout=0.3, backend=backend) as client:
            with pytest.raises(asyncgen.RequestTimeoutError, match=r"timeout 0\.3 s"):
                await client.chat("m", HI)

    async def test_refused_connection(self) -> None:
        """Nothing listening on the port is a ConnectionFailedError."""
        async with ChatClient("http://127.0.0.1:9/v1", connect_timeout=2) as client:
            with pytest.raises(asyncgen.ConnectionFailedError):
                await client.chat("m", HI)


def test_a_fresh_process_loads_the_io_backend_before_its_first_request() -> None:
    """httpx loads anyio's event-loop backend on its first request (~30 ms of imports):
    a rate-limited first request would go that late after its booked start and crowd the
    next second at a sliding-window server (3 of 203 requests refused with five
    processes sharing a limiter). Opening the client loads it instead."""
    code = (
        "import asyncio, sys, asyncgen\n"
        "async def main():\n"
        "    async with asyncgen.ChatClient('http://127.0.0.1:9/v1'):\n"
        "        print('anyio._backends._asyncio' in sys.modules)\n"
        "asyncio.run(main())\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "True"


class TestHttp2:
    async def test_http2_is_used_by_default_when_offered(self) -> None:
        """Against a TLS server offering h2 (ALPN), the default client speaks HTTP/2."""
        with sim_server(http2=True) as sim:
            async with ChatClient(sim.base_url, verify=sim.verify) as client:
                completions = [await client.chat("m", HI) for _ in range(3)]
            assert [c.text for c in completions] == ["[m] hello there"] * 3
            assert sim.stats()["http_versions"] == {"2": 3}

    async def test_http1_when_asked_or_on_aiohttp(self) -> None:
        """http2=False and the aiohttp backend use HTTP/1.1 on the same server."""
        with sim_server(http2=True) as sim:
            for client in (
                ChatClient(sim.base_url, verify=sim.verify, http2=False),
                ChatClient(sim.base_url, verify=sim.verify, backend="aiohttp"),
            ):
                async with client:
                    await client.chat("m", HI)
            assert sim.stats()["http_versions"] == {"1.1": 2}

    async def test_aiohttp_protocol_errors_are_typed(self) -> None:
        """An aiohttp failure its transport leaves unmapped still becomes our error type."""
        with sim_server(http2=True) as sim:
            context = sim.verify
            assert not isinstance(context, bool)
            context.set_alpn_protocols(["h2"])  # the server will speak h2 to aiohttp
            async with ChatClient(sim.base_url, verify=context, backend="aiohttp") as client:
                with pytest.raises(asyncgen.ConnectionFailedError):
                    await client.chat("m", HI)

    def test_http2_simulator_in_a_child_process(self) -> None:
        """The HTTP/2 simulator also runs as a separate process."""
        with sim_server(http2=True, process=True) as sim:
            client = ChatClient(sim.base_url, verify=sim.verify)
            results = asyncgen.sync.fan_out("x", ["a", "b"], client=client)
            client.close()
            assert [r.text for r in results] == ["[a] x", "[b] x"]
            assert sim.stats()["http_versions"] == {"2": 2}


class TestSecrets:
    def test_repr_never_shows_the_key(self) -> None:
        """The repr says whether a key is set, never what it is."""
        client = ChatClient("https://x.test/v1", KEY)
        assert KEY not in repr(client)
        assert repr(client) == "ChatClient(base_url='https://x.test/v1', api_key=<set>)"

    def test_presets_take_keys_from_the_environment(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Presets read their provider's variable and can be overridden."""
        monkeypatch.setenv("OPENROUTER_API_KEY", KEY)
        monkeypatch.delenv("OPENAI_API_KEY", raising=False)
        assert ChatClient.openrouter().has_api_key
        assert ChatClient.openrouter().base_url == "https://openrouter.ai/api/v1"
        with pytest.raises(ValueError, match=r"ChatClient.openai\(\): no API key: set OPENAI_API"):
            ChatClient.openai()
        assert not ChatClient.openai(base_url="http://127.0.0.1:1/v1").has_api_key
        assert ChatClient.deepseek(base_url="http://127.0.0.1:1/v1").base_url.endswith(":1/v1")

    def test_presets_take_their_url_from_the_environment(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """$OPENAI_BASE_URL (as the openai SDK reads it) and its siblings point a preset at
        a gateway or the simulator; a URL given in code wins; the provider stays named."""
        monkeypatch.delenv("OPENAI_API_KEY", raising=False)
        monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:2/v1")
        monkeypatch.setenv("OPENROUTER_BASE_URL", "http://127.0.0.1:3/v1/")
        client = ChatClient.openai()  # no key needed away from OpenAI's own URL
        assert (client.base_url, client.provider) == ("http://127.0.0.1:2/v1", "openai")
        assert ChatClient.openrouter().base_url == "http://127.0.0.1:3/v1"
        assert ChatClient.openai(base_url="http://127.0.0.1:4/v1").base_url.endswith(":4/v1")
        monkeypatch.setenv("DEEPSEEK_BASE_URL", "")
        with pytest.raises(ValueError, match="DEEPSEEK_API_KEY"):
            ChatClient.deepseek()

    async def test_key_never_reaches_logs(self, sim: SimServer) -> None:
        """Retries and failures are logged without the key, even if the error shows it."""
        sim.configure(faulty(Fault(kind="status", status=503, message=f"bad key {KEY}")))
        out = io.StringIO()
        asyncgen.configure_logging(json=True, stream=out)
        async with ChatClient(sim.base_url, KEY) as client:
            results = await asyncgen.generate(
                [{"model": "m", "prompt": "x"}],
                client=client,
                retry=asyncgen.RetryPolicy(base_delay=0.001),
            )
        assert "retrying" in out.getvalue()
        assert KEY not in out.getvalue()
        assert KEY not in str(results[0].error)

    def test_unknown_backend_is_refused(self) -> None:
        """Only the two known backends are accepted."""
        with pytest.raises(ValueError, match="backend"):
            ChatClient("http://127.0.0.1:1/v1", backend="curl")  # type: ignore[arg-type]

    def test_bad_base_url_is_refused(self) -> None:
        """A base URL without a scheme is a ValueError saying what is needed."""
        with pytest.raises(ValueError, match="http"):
            ChatClient("api.openai.com/v1")


class TestKeys:
    async def test_white_space_around_a_key_is_stripped(self, sim: SimServer) -> None:
        """A trailing \\r\\n (a Windows .env file) is removed and the key works."""
        sim.configure(SimConfig(api_key=KEY))
        async with ChatClient(sim.base_url, f"  {KEY}\r\n") as client:
            completion = await client.chat("m", HI)
        assert completion.text

    @pytest.mark.parametrize(
        ("key", "said"),
        [
            ("sk-abc\rdef-123456", "a control character (U+000D) at position 7"),
            ("sk-abc def-123456", "white space (U+0020) at position 7"),
            ("sk-abc\u00e9def-123456", "a non-ASCII character (U+00E9) at position 7"),
        ],
    )
    def test_impossible_keys_are_refused(self, key: str, said: str) -> None:
        """A key no header can carry is a ValueError naming the character, not the key."""
        with pytest.raises(ValueError, match=re.escape(said)) as refused:
            ChatClient("https://x.test/v1", key)
        assert "def-123456" not in str(refused.value)

    def test_an_unsendable_request_error_is_masked(self) -> None:
        """httpx's 'cannot send' errors are mapped with any key in them masked."""
        exc = httpx.LocalProtocolError(f"Illegal header value b'Bearer {KEY}\\r'")
        mapped = map_httpx_error(exc, what="m", timeout=1.0)
        assert isinstance(mapped, asyncgen.BadRequestError)
        assert KEY not in str(mapped)
