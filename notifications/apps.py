from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    """Templates, outbox, email, in-app banners and outgoing webhooks. Never imports dunning."""

    name = "notifications"
    verbose_name = "Notifications"
