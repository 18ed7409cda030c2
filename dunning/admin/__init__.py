"""Admin for the dunning engine: decline codes, policies, the case queue, attempts, the Stripe inbox."""

from dunning.admin import (  # noqa: F401 - registers the ModelAdmins
    attempts,
    cases,
    declines,
    policies,
    portal,
    stripe_events,
)
