"""Admin for the dunning engine: decline codes, policies, the case queue, attempts, the Stripe inbox,
double payments and the gateway circuit breaker."""

from dunning.admin import (  # noqa: F401 - registers the ModelAdmins
    attempts,
    cases,
    declines,
    policies,
    portal,
    safety,
    stripe_events,
)
