"""Stripe sync: the webhook inbox, one service per event kind, reconciliation and imports.

Public entry points (keyword-only, like every service):
- ``stripe_event_receive``, ``stripe_event_store``, ``stripe_event_process``, ``stripe_events_sweep``,
  ``stripe_events_replay``: the inbox;
- ``stripe_invoice_payment_failed``, ``stripe_invoice_settled``, ``stripe_payment_method_changed``,
  ``stripe_customer_default_changed``, ``stripe_card_expiring``, ``stripe_invoice_upcoming``: what the
  handlers call (``HANDLERS``);
- ``stripe_reconcile``, ``stripe_import``: the commands' work.
"""

from dunning.services.stripe_sync.common import EventDeferred, Outcome, stripe_gateway
from dunning.services.stripe_sync.handlers import HANDLED_EVENT_TYPES, HANDLERS
from dunning.services.stripe_sync.inbox import (
    WebhookPayloadInvalid,
    stripe_event_process,
    stripe_event_receive,
    stripe_event_store,
    stripe_events_replay,
    stripe_events_sweep,
)
from dunning.services.stripe_sync.invoices import stripe_invoice_payment_failed, stripe_invoice_settled
from dunning.services.stripe_sync.methods import (
    stripe_card_expiring,
    stripe_customer_default_changed,
    stripe_invoice_upcoming,
    stripe_payment_method_changed,
)
from dunning.services.stripe_sync.reconcile import SyncSummary, stripe_import, stripe_reconcile

__all__ = [
    "HANDLED_EVENT_TYPES",
    "HANDLERS",
    "EventDeferred",
    "Outcome",
    "SyncSummary",
    "WebhookPayloadInvalid",
    "stripe_card_expiring",
    "stripe_customer_default_changed",
    "stripe_event_process",
    "stripe_event_receive",
    "stripe_event_store",
    "stripe_events_replay",
    "stripe_events_sweep",
    "stripe_gateway",
    "stripe_import",
    "stripe_invoice_payment_failed",
    "stripe_invoice_settled",
    "stripe_invoice_upcoming",
    "stripe_payment_method_changed",
    "stripe_reconcile",
]
