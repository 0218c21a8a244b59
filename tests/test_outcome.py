"""Outcome: a value or an error per input slot."""

import dataclasses

import pytest

from asyncgen import Outcome, ServerError


def test_success_unwraps_to_value() -> None:
    """A successful outcome is ok and unwraps to its value."""
    outcome = Outcome(index=3, value="text", attempts=2, elapsed=0.5)
    assert outcome.ok
    assert outcome.unwrap() == "text"


def test_failure_unwrap_raises_the_original_error() -> None:
    """A failed outcome is not ok and unwrap raises the very error it holds."""
    error = ServerError("down", status=503)
    outcome: Outcome[str] = Outcome(index=0, error=error)
    assert not outcome.ok
    with pytest.raises(ServerError) as caught:
        outcome.unwrap()
    assert caught.value is error


def test_outcome_is_frozen() -> None:
    """Outcomes cannot be changed after the fact."""
    outcome = Outcome(index=0, value=1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        outcome.index = 2  # type: ignore[misc]


def test_repr_shows_value_or_error() -> None:
    """The repr shows what a person needs: index, value or error, attempts, time."""
    assert repr(Outcome(index=1, value=7, elapsed=0.25)) == (
        "Outcome(index=1, value=7, attempts=1, elapsed=0.250)"
    )
    assert "error=ServerError('x', status=500)" in repr(
        Outcome(index=1, error=ServerError("x", status=500))
    )
