"""django-q2 entry points: thin wrappers with stable dotted paths."""

from __future__ import annotations

from dunning.services.tick import run_tick


def run_dunning_tick() -> str:
    """The scheduled tick. Business retries live in our tables, so a missed run simply runs later."""
    return "\n".join(run_tick().lines())
