"""The case state machine, as data. Pure: no Django, no database.

``dunning.services.cases.cases_transition`` is the only code that writes a case's state, and it asks this
module whether a move is allowed.
"""

from __future__ import annotations

from enum import StrEnum


class State(StrEnum):
    OPEN = "open"
    PAUSED = "paused"
    RECOVERED = "recovered"
    EXHAUSTED = "exhausted"
    CANCELLED = "cancelled"
    HANDED_OFF = "handed_off"


class Event(StrEnum):
    PAUSE = "pause"
    RESUME = "resume"
    RECOVER = "recover"
    EXHAUST = "exhaust"
    CANCEL = "cancel"
    HAND_OFF = "hand_off"


ACTIVE_STATES: frozenset[State] = frozenset({State.OPEN, State.PAUSED})
FINAL_STATES: frozenset[State] = frozenset({State.RECOVERED, State.CANCELLED})

# (from state, event) -> to state. Anything not listed is refused.
TRANSITIONS: dict[tuple[State, Event], State] = {
    (State.OPEN, Event.PAUSE): State.PAUSED,
    (State.PAUSED, Event.RESUME): State.OPEN,
    (State.OPEN, Event.RECOVER): State.RECOVERED,
    (State.PAUSED, Event.RECOVER): State.RECOVERED,
    (State.OPEN, Event.EXHAUST): State.EXHAUSTED,
    (State.OPEN, Event.CANCEL): State.CANCELLED,
    (State.PAUSED, Event.CANCEL): State.CANCELLED,
    (State.OPEN, Event.HAND_OFF): State.HANDED_OFF,
    (State.PAUSED, Event.HAND_OFF): State.HANDED_OFF,
    (State.EXHAUSTED, Event.HAND_OFF): State.HANDED_OFF,
    # Money can still arrive after the automation gave up (a win-back, or collections): that is a recovery.
    (State.EXHAUSTED, Event.RECOVER): State.RECOVERED,
    (State.HANDED_OFF, Event.RECOVER): State.RECOVERED,
    # Voiding an exhausted or handed-off invoice closes its case.
    (State.EXHAUSTED, Event.CANCEL): State.CANCELLED,
    (State.HANDED_OFF, Event.CANCEL): State.CANCELLED,
}


class TransitionRefused(ValueError):
    def __init__(self, state: str, event: str) -> None:
        super().__init__(f"a case that is {state} cannot {event.replace('_', ' ')}")
        self.state = state
        self.event = event


def next_state(state: str, event: str) -> State:
    """The state after ``event``, or :class:`TransitionRefused`."""
    try:
        return TRANSITIONS[(State(state), Event(event))]
    except (KeyError, ValueError):
        raise TransitionRefused(state, event) from None


def can(state: str, event: str) -> bool:
    try:
        next_state(state, event)
    except TransitionRefused:
        return False
    return True


def sources_for(event: str) -> frozenset[State]:
    """Every state from which ``event`` is allowed: the WHERE clause of a set-based transition."""
    return frozenset(source for (source, ev), _ in TRANSITIONS.items() if ev == Event(event))
