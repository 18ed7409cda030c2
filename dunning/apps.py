from django.apps import AppConfig


class DunningConfig(AppConfig):
    """The engine: decline codes, policies, cases, attempts, gateways, Stripe webhooks, portal."""

    name = "dunning"
    verbose_name = "Dunning"

    def ready(self) -> None:
        # Notifications cannot import dunning; dunning tells it, at start-up, how to spot a closed case.
        from dunning.guards import case_still_active, prefetch_case_states
        from notifications.guards import register_send_guard

        register_send_guard(case_still_active, prefetch=prefetch_case_states)
        # System checks of the gateway settings (dunning.E001…); erasure and export of a customer's data,
        # where dunning handles its own rows (customers.privacy).
        from customers.signals import customer_data_requested, customer_erasing
        from dunning import checks  # noqa: F401
        from dunning.signals import on_customer_data_requested, on_customer_erasing

        customer_erasing.connect(on_customer_erasing, dispatch_uid="dunning.customer_erasing")
        customer_data_requested.connect(on_customer_data_requested, dispatch_uid="dunning.customer_data")
