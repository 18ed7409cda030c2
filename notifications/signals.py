"""Signal receivers: thin adapters to services."""

from __future__ import annotations

from typing import Any

from anymail.signals import AnymailTrackingEvent

from customers.models import Customer
from customers.privacy import Erasure
from notifications.services.privacy import notifications_customer_data, notifications_erase_customer
from notifications.services.tracking import notification_record_tracking


def on_anymail_tracking(sender: Any, event: AnymailTrackingEvent, esp_name: str, **kwargs: Any) -> None:
    notification_record_tracking(event=event, esp_name=esp_name)


def on_customer_erasing(sender: Any, erasure: Erasure, **kwargs: Any) -> dict[str, int]:
    return notifications_erase_customer(erasure=erasure)


def on_customer_data_requested(sender: Any, customer: Customer, **kwargs: Any) -> dict[str, Any]:
    return notifications_customer_data(customer=customer)
