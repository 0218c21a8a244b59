"""Job files for the command line: validate and stream input, append and resume output.

Input lines: ``{"id", "model", "prompt" | "messages", "params"}``. Output lines: id,
model, ok, text, error type and message, attempts, latency, usage — one per finished
job, appended and flushed as each finishes, so a killed run loses nothing finished.
Both files are read as bytes, one bounded line at a time: a bad byte or a huge line is
a numbered problem, never a crash or an unbounded read.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from pydantic import BaseModel, ValidationError

from ..core._validation import describe_invalid
from ..llm import GenerationJob

__all__ = [
    "MAX_LINE",
    "Done",
    "InputProblem",
    "InputSummary",
    "Line",
    "UsageProblem",
    "check_files",
    "read_jobs",
    "read_lines",
    "validate_input",
]

MAX_REPORTED = 20
MAX_LINE = 32 * 1024 * 1024  # bytes in one line of input or output, newline included


class UsageProblem(Exception):
    """A problem with the command line or its files, said in one sentence: exit code 2."""


@dataclass(frozen=True, slots=True)
class Done:
    """An id an earlier run finished: the request's fingerprint then (None in files
    written before fingerprints), and whether it failed."""

    fingerprint: str | None
    failed: bool


def finished_before(job: GenerationJob, done: Mapping[str, Done]) -> Done | None:
    """What an earlier run left for ``job``, unless its request has changed since."""
    before = done.get(job.id)
    if before is None or before.fingerprint in (None, job.fingerprint()):
        return before
    return None


@dataclass(frozen=True, slots=True)
class InputProblem:
    """One bad input line: its number (from 1) and why it is bad."""

    line: int
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


@dataclass(frozen=True, slots=True)
class Line:
    """One line of a file: its number, its text (None if unreadable) and what is wrong."""

    number: int
    text: str | None
    problem: str | None = None
    complete: bool = True  # ended with a newline


def read_lines(stream: BinaryIO) -> Iterator[Line]:
    """Yield the lines of a binary stream, decoded, each at most MAX_LINE bytes.

    A UTF-8 byte order mark at the start is skipped; a line that is not UTF-8 or is
    longer than MAX_LINE comes with a problem instead of text.
    """
    number = 0
    while raw := stream.readline(MAX_LINE + 1):
        number += 1
        if len(raw) > MAX_LINE:
            while raw and not raw.endswith(b"\n"):  # skip the rest of the line
                raw = stream.readline(1 << 20)
            yield Line(number, None, f"longer than {MAX_LINE >> 20} MiB", raw.endswith(b"\n"))
            continue
        if number == 1 and raw.startswith(codecs.BOM_UTF8):
            raw = raw[len(codecs.BOM_UTF8) :]
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            where = f"byte 0x{raw[exc.start]:02x} at column {exc.start + 1}"
            problem = f"not UTF-8 text ({where}): save the file as UTF-8"
            yield Line(number, None, problem, raw.endswith(b"\n"))
            continue
        yield Line(number, text, None, raw.endswith(b"\n"))


def check_files(input_path: Path, output: Path) -> None:
    """Refuse an input that is not a readable file and an output we could not resume.

    Raises:
        UsageProblem: What is wrong, and what to do.
    """
    if input_path.is_dir():
        raise UsageProblem(f"input {input_path} is a directory: give a JSONL file")
    if not input_path.exists():
        raise UsageProblem(f"input file not found: {input_path}")
    if not input_path.is_file():
        raise UsageProblem(f"input {input_path} is not a regular file: give a JSONL file")
    if output.is_dir():
        raise UsageProblem(f"output {output} is a directory: give a file name (-o out.jsonl)")
    if not output.parent.is_dir():
        raise UsageProblem(f"the folder of output {output} does not exist: create it first")
    if output.exists() and not output.is_file():
        raise UsageProblem(
            f"output {output} is not a regular file: -o must name a file that can be read "
            "back to resume (not a device, pipe or socket)"
        )
    if output.exists() and output.samefile(input_path):
        raise UsageProblem("the output (-o) is the input file: give another file for results")


@dataclass(slots=True)
class InputSummary:
    """What a validation pass found: the number of jobs and the problems (capped)."""

    jobs: int = 0
    done_before: int = 0
    failed_before: int = 0  # of done_before: failed, not to be re-run
    changed: int = 0  # finished before, but their request changed: run again
    problems: list[InputProblem] = field(default_factory=list)
    problem_count: int = 0

    @property
    def todo(self) -> int:
        """Valid jobs not finished by an earlier run."""
        return self.jobs - self.done_before

    def add_problem(self, number: int, reason: str) -> None:
        self.problem_count += 1
        if len(self.problems) < MAX_REPORTED:
            self.problems.append(InputProblem(number, reason))


def _parse(
    number: int, raw: str, default_model: str | None, response_model: type[BaseModel] | None
) -> GenerationJob:
    """Parse one line into a job; raise ValueError with a reason a person can act on."""
    try:
        data = json.loads(raw.rstrip("\r\n"))
    except json.JSONDecodeError as exc:
        at = "" if exc.msg.endswith(" at") else " at"  # "Unterminated string starting at"
        raise ValueError(f"not JSON ({exc.msg}{at} column {exc.colno})") from None
    if not isinstance(data, dict):
        raise ValueError(f"expected a JSON object, got {type(data).__name__}")
    if default_model and "model" not in data:
        data["model"] = default_model
    given = data.setdefault("id", f"line-{number}")
    if isinstance(given, bool) or not isinstance(given, str | int):
        raise ValueError(f"id must be a string or a whole number, got {json.dumps(given)}")
    data["id"] = str(given)
    if response_model is not None:
        data["response_model"] = response_model
    try:
        return GenerationJob.model_validate(data)
    except ValidationError as exc:
        raise ValueError(describe_invalid(exc, whole="job")) from None


def _jobs(
    path: Path, default_model: str | None, response_model: type[BaseModel] | None
) -> Iterator[tuple[int, GenerationJob | str]]:
    """Each non-blank line's number and its job, or the reason it is bad."""
    with path.open("rb") as stream:
        for line in read_lines(stream):
            if line.text is None:
                yield line.number, line.problem or "unreadable"
            elif line.text.strip():
                try:
                    yield line.number, _parse(line.number, line.text, default_model, response_model)
                except ValueError as exc:
                    yield line.number, str(exc)


def validate_input(
    path: Path,
    *,
    done: Mapping[str, Done],
    default_model: str | None = None,
    response_model: type[BaseModel] | None = None,
) -> InputSummary:
    """Check every line of ``path`` and count the jobs an earlier run did not finish.

    One pass; the jobs themselves are not kept, only their ids (to refuse duplicates:
    two lines with one id would both run, and a resume could not tell them apart). A
    job finished before whose request has changed since counts in ``changed``.
    """
    summary = InputSummary()
    first_seen: dict[str, int] = {}
    for number, job in _jobs(path, default_model, response_model):
        if isinstance(job, str):
            summary.add_problem(number, job)
        elif (first := first_seen.setdefault(job.id, number)) != number:
            summary.add_problem(number, f"duplicate id {job.id!r} (first on line {first})")
        else:
            summary.jobs += 1
            before = finished_before(job, done)
            summary.done_before += before is not None
            summary.failed_before += before is not None and before.failed
            summary.changed += before is None and job.id in done
    return summary


def read_jobs(
    path: Path,
    *,
    done: Mapping[str, Done],
    default_model: str | None = None,
    response_model: type[BaseModel] | None = None,
) -> Iterator[GenerationJob]:
    """Stream the jobs of a validated file an earlier run did not finish."""
    for _, job in _jobs(path, default_model, response_model):
        if isinstance(job, GenerationJob) and finished_before(job, done) is None:
            yield job
