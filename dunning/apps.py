from django.apps import AppConfig


class DunningConfig(AppConfig):
    """The engine: decline codes, policies, cases, attempts, gateways, Stripe webhooks, portal."""

    name = "dunning"
    verbose_name = "Dunning"
