"""Admin for the notifications app, one module per concern. Thin: forms parse, services write."""

from notifications.admin import banners, outbox, staff, templates, webhooks

__all__ = ["banners", "outbox", "staff", "templates", "webhooks"]
