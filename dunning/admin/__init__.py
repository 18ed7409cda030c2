"""Admin for the dunning engine: decline codes, policies, the case queue and attempts."""

from dunning.admin import attempts, cases, declines, policies, portal  # noqa: F401 - registers the ModelAdmins
