"""The case state machine is a pure table; these tests read it like a spec."""

from __future__ import annotations

import pytest

from dunning.state import Event, State, TransitionRefused, can, next_state, sources_for


@pytest.mark.parametrize(
    ("state", "event", "expected"),
    [
        (State.OPEN, Event.PAUSE, State.PAUSED),
        (State.PAUSED, Event.RESUME, State.OPEN),
        (State.OPEN, Event.RECOVER, State.RECOVERED),
        (State.PAUSED, Event.RECOVER, State.RECOVERED),
        (State.OPEN, Event.EXHAUST, State.EXHAUSTED),
        (State.OPEN, Event.CANCEL, State.CANCELLED),
        (State.OPEN, Event.HAND_OFF, State.HANDED_OFF),
        (State.EXHAUSTED, Event.RECOVER, State.RECOVERED),
        (State.HANDED_OFF, Event.RECOVER, State.RECOVERED),
        (State.EXHAUSTED, Event.HAND_OFF, State.HANDED_OFF),
    ],
)
def test_allowed_transitions(state: State, event: Event, expected: State) -> None:
    assert next_state(state, event) == expected


@pytest.mark.parametrize(
    ("state", "event"),
    [
        # Final states are final.
        (State.RECOVERED, Event.RECOVER),
        (State.RECOVERED, Event.EXHAUST),
        (State.RECOVERED, Event.PAUSE),
        (State.CANCELLED, Event.RECOVER),
        (State.CANCELLED, Event.RESUME),
        # Nonsense moves.
        (State.OPEN, Event.RESUME),
        (State.PAUSED, Event.PAUSE),
        (State.PAUSED, Event.EXHAUST),
        (State.EXHAUSTED, Event.PAUSE),
    ],
)
def test_refused_transitions(state: State, event: Event) -> None:
    assert not can(state, event)
    with pytest.raises(TransitionRefused, match="cannot"):
        next_state(state, event)


def test_unknown_states_and_events_are_refused() -> None:
    assert not can("bogus", "recover")
    assert not can("open", "explode")


def test_sources_for_event_is_the_where_clause_of_a_set_based_move() -> None:
    assert sources_for(Event.RECOVER) == {State.OPEN, State.PAUSED, State.EXHAUSTED, State.HANDED_OFF}
    assert sources_for(Event.RESUME) == {State.PAUSED}
