"""Signal receivers: thin adapters to services."""

from __future__ import annotations

from typing import Any

from anymail.signals import AnymailTrackingEvent

from notifications.services.tracking import notification_record_tracking


def on_anymail_tracking(sender: Any, event: AnymailTrackingEvent, esp_name: str, **kwargs: Any) -> None:
    notification_record_tracking(event=event, esp_name=esp_name)
