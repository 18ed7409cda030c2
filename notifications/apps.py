from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    """Templates, outbox, email, in-app banners and outgoing webhooks. Never imports dunning."""

    name = "notifications"
    verbose_name = "Notifications"

    def ready(self) -> None:
        from anymail.signals import tracking

        from notifications import checks  # noqa: F401 (registers the system checks)
        from notifications.signals import on_anymail_tracking

        # The configured provider's tracking webhook (/anymail/<provider>/tracking/) arrives here.
        tracking.connect(on_anymail_tracking, dispatch_uid="notifications.anymail_tracking")
        # Each app erases and exports its own rows about a customer (customers.privacy).
        from customers.signals import customer_data_requested, customer_erasing
        from notifications.signals import on_customer_data_requested, on_customer_erasing

        customer_erasing.connect(on_customer_erasing, dispatch_uid="notifications.customer_erasing")
        customer_data_requested.connect(
            on_customer_data_requested, dispatch_uid="notifications.customer_data"
        )
