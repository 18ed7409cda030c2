"""Notification models, one module per concern. Import them from here."""

from notifications.models.banners import ApiKey, Banner, BannerSeverity
from notifications.models.local_mail import LocalMail
from notifications.models.outbox import (
    Audience,
    Channel,
    Notification,
    NotificationStatus,
    ReasonCode,
    SuppressedAddress,
    SuppressionReason,
)
from notifications.models.staff import StaffTask, StaffTaskStatus
from notifications.models.templates import MessageTemplate, TemplateEditor
from notifications.models.webhooks import (
    DeliveryStatus,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)

__all__ = [
    "ApiKey",
    "Audience",
    "Banner",
    "BannerSeverity",
    "Channel",
    "DeliveryStatus",
    "LocalMail",
    "MessageTemplate",
    "Notification",
    "NotificationStatus",
    "ReasonCode",
    "StaffTask",
    "StaffTaskStatus",
    "SuppressedAddress",
    "SuppressionReason",
    "TemplateEditor",
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookEndpoint",
]
