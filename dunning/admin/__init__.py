"""Admin for the dunning engine: decline codes, policies, the case queue, attempts, the Stripe inbox."""

from dunning.admin import attempts, cases, declines, policies, stripe_events  # noqa: F401 - registers the ModelAdmins
