"""Structured outputs against the simulator over real sockets: the schema is sent, an
answer that does not fit is re-asked with what was wrong, usage adds up, the budget
counts the re-asks."""

from __future__ import annotations

import json
import pickle
import subprocess
from pathlib import Path

import pytest
from pydantic import BaseModel, Field

import asyncgen
from asyncgen import (
    BudgetExceededError,
    ChatClient,
    GenerationJob,
    RetryPolicy,
    ValidationFailedError,
    fan_out,
    generate,
    open_queue,
)
from asyncgen.llm.batch_api._lines import request_line
from asyncgen.llm.engine._events import ResultCounts
from asyncgen.sim import BatchProfile, ModelProfile, SimConfig
from asyncgen.testing import SimServer
from tests.processes import asyncgen_argv

GOOD = '{"name": "Ada", "age": 36}'
FENCED = f"```json\n{GOOD}\n```"


class Person(BaseModel):
    name: str
    age: int = Field(ge=0)


def run_with_schema(
    folder: Path, source: Path, out: Path, sim: SimServer, schema: str, *extra: str
) -> subprocess.CompletedProcess[str]:
    """``asyncgen run SOURCE -o OUT --schema SCHEMA`` against ``sim``, in ``folder``."""
    flags = ("--base-url", sim.base_url, "--schema", schema, *extra)
    return subprocess.run(
        asyncgen_argv("run", str(source), "-o", str(out), *flags),
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=60,
    )


def replies(sim: SimServer, *answers: str, price: float = 0.0) -> None:
    sim.configure(SimConfig(default=ModelProfile(replies=list(answers), price_per_token=price)))


async def one(sim: SimServer, job: GenerationJob, **options: object) -> object:
    client = ChatClient(sim.base_url)
    try:
        (result,) = await generate([job], client=client, **options)  # type: ignore[arg-type]
    finally:
        await client.aclose()
    return result


async def test_the_schema_is_sent_and_the_answer_parsed(sim: SimServer) -> None:
    replies(sim, GOOD)
    result = await one(sim, GenerationJob(model="m", prompt="who?", response_model=Person))
    assert result.parsed == Person(name="Ada", age=36)  # type: ignore[attr-defined]
    (sent,) = sim.stats()["last_requests"]
    assert sent["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "Person", "schema": Person.model_json_schema()},
    }
    assert result.to_record()["parsed"] == {"name": "Ada", "age": 36}  # type: ignore[attr-defined]


async def test_an_answer_that_does_not_fit_is_reasked(sim: SimServer) -> None:
    """Not JSON, then a field missing, then right (in a ```json fence): two re-asks, each
    carrying what was wrong; usage is the three requests' together."""
    replies(sim, "Ada, 36", '{"name": "Ada"}', FENCED, price=1e-6)
    result = await one(sim, GenerationJob(model="m", prompt="who?", response_model=Person))
    assert result.ok, result.error  # type: ignore[attr-defined]
    assert result.parsed == Person(name="Ada", age=36)  # type: ignore[attr-defined]
    assert result.attempts == 3  # type: ignore[attr-defined]
    first, second, third = sim.stats()["last_requests"]
    assert len(first["messages"]) == 1
    assert second["messages"][1] == {"role": "assistant", "content": "Ada, 36"}
    assert "Invalid JSON" in second["messages"][2]["content"]
    assert "age: Field required" in third["messages"][4]["content"]
    usage = result.completion.usage  # type: ignore[attr-defined]
    spent = sim.stats()["spent"]  # the simulator's charge for the three answers
    assert usage.cost == pytest.approx(spent)
    assert usage.total_tokens == round(spent / 1e-6)


async def test_after_max_reasks_the_job_fails_with_the_text_and_errors(sim: SimServer) -> None:
    replies(sim, '{"name": "Ada", "age": -1}')
    job = GenerationJob(model="m", prompt="who?", response_model=Person, max_reasks=1)
    result = await one(sim, job)
    error = result.error  # type: ignore[attr-defined]
    assert isinstance(error, ValidationFailedError)
    assert error.text == '{"name": "Ada", "age": -1}'
    assert error.errors is not None
    assert error.errors[0]["loc"] == ["age"]
    assert "after 1 re-ask(s)" in str(error)
    assert sim.stats()["requests"] == {"m": 2}
    again = pickle.loads(pickle.dumps(error))
    assert (again.text, again.errors) == (error.text, error.errors)


async def test_reasks_count_against_max_cost(sim: SimServer) -> None:
    """The first answer's cost uses the budget up: no re-ask is sent."""
    replies(sim, "not json", GOOD, price=0.001)
    job = GenerationJob(model="m", prompt="who?", response_model=Person)
    result = await one(sim, job, max_cost=0.001)
    assert isinstance(result.error, BudgetExceededError)  # type: ignore[attr-defined]
    assert sim.stats()["requests"] == {"m": 1}


async def test_fan_out_with_a_response_model(sim: SimServer) -> None:
    replies(sim, GOOD)
    client = ChatClient(sim.base_url)
    results = await fan_out(
        "who?", ["a", "b"], client=client, response_model=Person, retry=RetryPolicy.never()
    )
    await client.aclose()
    assert [r.parsed for r in results] == [Person(name="Ada", age=36)] * 2


async def test_a_job_with_a_response_model_is_not_queued(tmp_path: Path) -> None:
    queue = open_queue(f"sqlite:///{tmp_path}/q.db")
    with pytest.raises(TypeError, match="cannot be queued"):
        await queue.submit(GenerationJob(model="m", prompt="x", response_model=Person))
    await queue.aclose()


def test_the_cli_schema_flag(sim: SimServer, tmp_path: Path) -> None:
    replies(sim, "oops", GOOD)
    (tmp_path / "shapes.py").write_text(
        "from pydantic import BaseModel\n\nclass Person(BaseModel):\n    name: str\n    age: int\n"
    )
    source = tmp_path / "in.jsonl"
    source.write_text(json.dumps({"id": "1", "model": "m", "prompt": "who?"}) + "\n")
    out = tmp_path / "out.jsonl"
    done = run_with_schema(tmp_path, source, out, sim, "shapes:Person")
    assert done.returncode == 0, done.stderr
    (record,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert record["parsed"] == {"name": "Ada", "age": 36}
    bad = run_with_schema(tmp_path, source, tmp_path / "x.jsonl", sim, "shapes:Nobody")
    assert bad.returncode == 2
    assert "cannot load shapes:Nobody" in bad.stderr


@pytest.mark.parametrize(
    ("module", "schema", "said"),
    [
        (
            "raise RuntimeError('no database here')\n",
            "broken:Model",
            "importing broken raised RuntimeError: no database here",
        ),
        ("class Model(:\n", "broken:Model", "raised SyntaxError (line 1)"),
        ("", "pydantic:BaseModel", "not a pydantic model of yours"),
        (
            "import socket\nfrom pydantic import BaseModel, ConfigDict\n\n"
            "class Model(BaseModel):\n    model_config = ConfigDict(arbitrary_types_allowed=True)\n"
            "    conn: socket.socket\n",
            "broken:Model",
            "its JSON schema",
        ),
    ],
)
def test_a_schema_that_cannot_be_used_is_one_line(
    sim: SimServer, tmp_path: Path, module: str, schema: str, said: str
) -> None:
    """--schema naming a module that fails, BaseModel itself, or a model with no JSON
    schema: exit 2, one error line, nothing sent, no output file."""
    (tmp_path / "broken.py").write_text(module)
    source = tmp_path / "in.jsonl"
    source.write_text(json.dumps({"id": "1", "model": "m", "prompt": "who?"}) + "\n")
    out = tmp_path / "out.jsonl"
    done = run_with_schema(tmp_path, source, out, sim, schema)
    assert done.returncode == 2
    assert said in done.stderr
    assert "Traceback" not in done.stderr
    assert sim.requests() == 0
    assert not out.exists()


async def test_client_chat_with_a_response_model(sim: SimServer) -> None:
    replies(sim, "nope", GOOD)
    client = ChatClient(sim.base_url)
    completion = await client.chat(
        "m", [{"role": "user", "content": "who?"}], response_model=Person
    )
    assert completion.parsed == Person(name="Ada", age=36)
    replies(sim, "nope")
    with pytest.raises(ValidationFailedError, match="after 1 re-ask"):
        await client.chat(
            "m", [{"role": "user", "content": "who?"}], response_model=Person, max_reasks=1
        )
    await client.aclose()


def test_the_batch_api_parses_answers_and_sends_misfits_again(
    sim: SimServer, tmp_path: Path
) -> None:
    """--schema with --batch-api: the schema goes in each request line, answers are
    parsed into "parsed", and one that does not fit goes again (here: a new batch)."""
    sim.configure(
        SimConfig(
            default=ModelProfile(replies=["oops", GOOD]), batch=BatchProfile(complete_after=0.05)
        )
    )
    (tmp_path / "shapes.py").write_text(
        "from pydantic import BaseModel\n\nclass Person(BaseModel):\n    name: str\n    age: int\n"
    )
    source = tmp_path / "in.jsonl"
    source.write_text(
        "".join(json.dumps({"id": str(i), "model": "m", "prompt": "who?"}) + "\n" for i in range(3))
    )
    out = tmp_path / "out.jsonl"
    done = run_with_schema(
        tmp_path, source, out, sim, "shapes:Person", "--batch-api", "--poll", "0.05"
    )
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) == 3
    assert all(line["parsed"] == {"name": "Ada", "age": 36} for line in lines)
    assert sorted(line["attempts"] for line in lines) == [1, 1, 2]  # the first answer: "oops"
    assert sim.stats()["batches_created"] == 2
    sent = sim.stats()["last_requests"]
    assert sent == []  # nothing went through the chat endpoint


async def test_generate_batch_with_a_response_model(sim: SimServer) -> None:
    """Library: parsed answers; jobs with two different models are refused."""
    sim.configure(
        SimConfig(default=ModelProfile(reply=GOOD), batch=BatchProfile(complete_after=0.05))
    )
    jobs = [
        GenerationJob(id=str(i), model="m", prompt="who?", response_model=Person) for i in range(2)
    ]
    async with ChatClient(sim.base_url) as client:
        results = await asyncgen.generate_batch(jobs, client=client, poll_interval=0.05)
        other = GenerationJob(id="x", model="m", prompt="?", response_model=BaseModel)
        with pytest.raises(ValueError, match="one response_model"):
            await asyncgen.generate_batch([*jobs, other], client=client)
    assert [r.parsed for r in results] == [Person(name="Ada", age=36)] * 2
    sent = request_line(jobs[0])["body"]["response_format"]  # the schema is in the line
    assert sent["json_schema"]["name"] == "Person"


async def test_one_accounting_of_what_a_run_spent(sim: SimServer) -> None:
    """Every answer is counted once, the same by the run's tally (fed by its events: the
    CLI summary and the run's dashboard), by the client's statistics (the worker reports)
    and by the simulator's charge: re-asks included, and the answers of a job that failed
    after its re-asks too."""
    replies(sim, "Ada, 36", '{"name": "Ada"}', FENCED, price=1e-6)
    counts = ResultCounts()
    client = ChatClient(sim.base_url)
    jobs = [
        GenerationJob(model="m", prompt="who?", response_model=Person),  # 3 answers
        GenerationJob(model="n", prompt="who?", response_model=Person, max_reasks=1),  # 2
    ]
    try:
        results = await generate(jobs, client=client, on_event=counts.count, max_tokens=10**6)
    finally:
        await client.aclose()
    assert [r.ok for r in results] == [True, False]
    assert sim.stats()["requests"] == {"m": 3, "n": 2}
    spent = sim.stats()["spent"]
    statistics = client.statistics()
    assert (counts.done, counts.ok, counts.failed, counts.unpriced) == (2, 1, 1, 0)
    assert counts.tokens == statistics.total_tokens == round(spent / 1e-6)
    assert counts.cost == pytest.approx(statistics.cost) == pytest.approx(spent)
