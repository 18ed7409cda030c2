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
