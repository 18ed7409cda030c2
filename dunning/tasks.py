"""django-q2 entry points: thin wrappers with stable dotted paths."""

from __future__ import annotations

from django.utils import timezone

from dunning.portal.services import portal_fresh_link_send
from dunning.services.predunning import predunning_expiring_cards_remind
from dunning.services.privacy import stripe_payloads_purge
from dunning.services.staff import cases_resume_due
from dunning.services.stripe_sync import stripe_event_process, stripe_events_sweep
from dunning.services.stripe_sync.reconcile import stripe_reconcile_scheduled
from dunning.services.tick import run_tick
from dunning.services.timing_learn import retry_timing_learn


def remind_expiring_cards() -> str:
    """Once a day: pre-dunning reminders for default cards that expire within 30 days."""
    return str(dict(predunning_expiring_cards_remind(now=timezone.now())))


def learn_retry_timing() -> str:
    """Nightly: rebuild the smart retry model and the customers' paydays."""
    record = retry_timing_learn(now=timezone.now())
    return str(record)


def run_dunning_tick() -> str:
    """The scheduled tick. Business retries live in our tables, so a missed run simply runs later.

    Pauses whose resume date has come end first, so their cases take part in this tick.
    """
    resumed = cases_resume_due(now=timezone.now())
    lines = run_tick().lines()
    return "\n".join([f"resumed: {len(resumed)} paused case(s)", *lines])


def portal_send_fresh_link(email: str) -> int:
    """The portal's "send me a fresh link" form, after the response (so it answers alike for any address)."""
    return portal_fresh_link_send(email=email)


def process_stripe_event(pk: int) -> str:
    """One stored Stripe event, enqueued after the webhook's commit."""
    return str(stripe_event_process(pk=pk) or "held by another worker or already processed")


def sweep_stripe_events() -> str:
    """Stripe events whose task was lost or that had to wait."""
    return str(dict(stripe_events_sweep()))


def reconcile_stripe() -> str:
    """The scheduled reconciliation: missed webhooks and open invoices, read back from Stripe."""
    return "\n".join(stripe_reconcile_scheduled().lines())


def purge_expired_stripe_payloads() -> int:
    """Once a day: Stripe event payloads past WEBHOOK_PAYLOAD_RETENTION_DAYS, cut down to their ids."""
    return stripe_payloads_purge()
