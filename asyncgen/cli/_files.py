"""Job files for the command line: validate and stream input, append and resume output.

Input lines: ``{"id", "model", "prompt" | "messages", "params"}``. Output lines: id,
model, ok, text, error type and message, attempts, latency, usage — one per finished
job, appended and flushed as each finishes, so a killed run loses nothing finished.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from pydantic import ValidationError

from ..llm import GenerationJob, GenerationResult

__all__ = ["InputProblem", "ResultWriter", "finished_ids", "read_jobs", "validate_input"]

MAX_REPORTED = 20


@dataclass(frozen=True, slots=True)
class InputProblem:
    """One bad input line: its number (from 1) and why it is bad."""

    line: int
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


@dataclass(slots=True)
class InputSummary:
    """What a validation pass found: the number of jobs and the problems (capped)."""

    jobs: int = 0
    done_before: int = 0
    problems: list[InputProblem] = field(default_factory=list)
    problem_count: int = 0

    @property
    def todo(self) -> int:
        """Valid jobs not finished by an earlier run."""
        return self.jobs - self.done_before


def _parse(number: int, raw: str, default_model: str | None) -> GenerationJob:
    """Parse one line into a job; raise ValueError with a reason a person can act on."""
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(data, dict):
        raise ValueError(f"expected a JSON object, got {type(data).__name__}")
    if default_model and "model" not in data:
        data["model"] = default_model
    data.setdefault("id", f"line-{number}")
    data["id"] = str(data["id"])
    try:
        return GenerationJob.model_validate(data)
    except ValidationError as exc:
        reasons = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'job'}: {err['msg']}" for err in exc.errors()
        )
        raise ValueError(reasons) from None


def _lines(stream: IO[str]) -> Iterator[tuple[int, str]]:
    for number, raw in enumerate(stream, start=1):
        if raw.strip():
            yield number, raw


def validate_input(path: Path, *, skip: set[str], default_model: str | None = None) -> InputSummary:
    """Check every line of ``path`` and count the jobs whose ids are not in ``skip``.

    One pass, constant memory: the jobs themselves are not kept.
    """
    summary = InputSummary()
    with path.open(encoding="utf-8") as stream:
        for number, raw in _lines(stream):
            try:
                job = _parse(number, raw, default_model)
            except ValueError as exc:
                summary.problem_count += 1
                if len(summary.problems) < MAX_REPORTED:
                    summary.problems.append(InputProblem(number, str(exc)))
            else:
                summary.jobs += 1
                summary.done_before += job.id in skip
    return summary


def read_jobs(
    path: Path, *, skip: set[str], default_model: str | None = None
) -> Iterator[GenerationJob]:
    """Stream the jobs of a validated file, leaving out ids in ``skip``."""
    with path.open(encoding="utf-8") as stream:
        for number, raw in _lines(stream):
            job = _parse(number, raw, default_model)
            if job.id not in skip:
                yield job


def finished_ids(path: Path, *, include_failed: bool) -> tuple[set[str], int]:
    """Ids already answered in an earlier run's output, and how many failed ones it holds.

    A run killed mid-write may leave a broken last line: it is ignored (the job runs
    again). With ``include_failed`` the failed ids count as finished (not re-run).
    """
    done: set[str] = set()
    failed: set[str] = set()
    if not path.exists():
        return done, 0
    with path.open(encoding="utf-8") as stream:
        for raw in stream:
            try:
                record = json.loads(raw)
                job_id, ok = str(record["id"]), bool(record["ok"])
            except (ValueError, KeyError, TypeError):
                continue
            if ok:
                done.add(job_id)
                failed.discard(job_id)
            elif job_id not in done:
                failed.add(job_id)
    if include_failed:
        done |= failed
    return done, len(failed)


class ResultWriter:
    """Appends one JSON line per finished job and flushes it at once."""

    def __init__(self, path: Path) -> None:
        self.path = path
        needs_newline = path.exists() and path.stat().st_size > 0 and not _ends_with_newline(path)
        self._file = path.open("a", encoding="utf-8")
        if needs_newline:  # a killed run left half a line: finish it so ours stay whole
            self._file.write("\n")

    def write(self, result: GenerationResult) -> None:
        """Append ``result`` as one line and flush it to the operating system."""
        self._file.write(json.dumps(result.to_record(), ensure_ascii=False) + "\n")
        self._file.flush()

    def close(self) -> None:
        """Close the file."""
        self._file.close()

    def __enter__(self) -> ResultWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _ends_with_newline(path: Path) -> bool:
    with path.open("rb") as stream:
        stream.seek(-1, 2)
        return stream.read(1) == b"\n"
