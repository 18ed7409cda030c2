"""Writes of the notifications app (keyword-only), split by concern. The public entry points used by the
dunning engine are re-exported here: ``from notifications.services import notifications_enqueue``.
"""

from notifications.services.banners import (
    BannerRequest,
    api_key_authenticate,
    api_key_create,
    api_key_revoke,
    banner_token_for,
    banner_token_read,
    banners_clear,
    banners_show,
    notifications_withdraw_for_cases,
)
from notifications.services.dispatch import (
    notifications_dispatch,
    notifications_dispatch_due,
    notifications_reap_interrupted,
)
from notifications.services.outbox import (
    MessageRequest,
    notifications_cancel_for_cases,
    notifications_enqueue,
    notifications_requeue,
    suppressed_address_add,
)
from notifications.services.staff import staff_task_complete, staff_task_create
from notifications.services.tracking import notification_record_tracking
from notifications.services.webhooks import (
    EVENT_TYPES,
    WebhookEvent,
    webhook_deliveries_attempt,
    webhook_delivery_replay,
    webhook_endpoint_enable,
    webhook_endpoint_send_test,
    webhooks_emit,
)

__all__ = [
    "EVENT_TYPES",
    "BannerRequest",
    "MessageRequest",
    "WebhookEvent",
    "api_key_authenticate",
    "api_key_create",
    "api_key_revoke",
    "banner_token_for",
    "banner_token_read",
    "banners_clear",
    "notifications_withdraw_for_cases",
    "banners_show",
    "notification_record_tracking",
    "notifications_cancel_for_cases",
    "notifications_dispatch",
    "notifications_dispatch_due",
    "notifications_enqueue",
    "notifications_requeue",
    "notifications_reap_interrupted",
    "staff_task_complete",
    "staff_task_create",
    "suppressed_address_add",
    "webhook_deliveries_attempt",
    "webhook_delivery_replay",
    "webhook_endpoint_enable",
    "webhook_endpoint_send_test",
    "webhooks_emit",
]
