"""Admin for the notifications app, one module per concern. Thin: forms parse, services write."""

from notifications.admin import banners, local_mail, outbox, staff, templates, webhooks

__all__ = ["banners", "local_mail", "outbox", "staff", "templates", "webhooks"]
