"""django-q2 entry points: thin wrappers with stable dotted paths."""

from __future__ import annotations

from dunning.portal.services import portal_fresh_link_send
from dunning.services.tick import run_tick


def run_dunning_tick() -> str:
    """The scheduled tick. Business retries live in our tables, so a missed run simply runs later."""
    return "\n".join(run_tick().lines())


def portal_send_fresh_link(email: str) -> int:
    """The portal's "send me a fresh link" form, after the response (so it answers alike for any address)."""
    return portal_fresh_link_send(email=email)
