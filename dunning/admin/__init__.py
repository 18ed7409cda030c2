"""Admin for the dunning engine: decline codes, policies, the case queue, attempts, the Stripe inbox,
double payments and the gateway circuit breaker.

``customer_page`` replaces the customer admin with one showing the account's dunning (it imports
``portal``, whose subclass it extends, so the registrations happen in that order whatever this list's).
"""

from dunning.admin import (  # noqa: F401 - registers the ModelAdmins
    attempts,
    cases,
    customer_page,
    declines,
    policies,
    portal,
    safety,
    stripe_events,
)
