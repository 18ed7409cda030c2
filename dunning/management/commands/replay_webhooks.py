"""``python manage.py replay_webhooks [--failed] [--since WHEN] [--type TYPE] [--id EVENT_ID ...]``."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from customers.actors import Actor
from dunning.management.timeparse import parse_since
from dunning.models import StripeEvent, StripeEventStatus
from dunning.services.stripe_sync import stripe_events_replay


class Command(BaseCommand):
    help = (
        "Run stored Stripe events through their handlers again (after a fix, or to check). Handlers are "
        "idempotent: an event whose effects are already there changes nothing."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--failed", action="store_true", help="Only events whose processing failed.")
        parser.add_argument("--since", help="Received since: 2026-05-01, 2026-05-01T09:00Z, 48h or 7d.")
        parser.add_argument("--type", dest="event_type", help="Only this event type, e.g. invoice.paid.")
        parser.add_argument("--id", dest="event_ids", nargs="+", default=[], help="These Stripe event ids.")
        parser.add_argument("--limit", type=int, default=10_000, help="At most this many (oldest first).")
        parser.add_argument("--dry-run", action="store_true", help="List what would run; change nothing.")

    def handle(
        self,
        *args: Any,
        failed: bool,
        since: str | None,
        event_type: str | None,
        event_ids: list[str],
        limit: int,
        dry_run: bool,
        **options: Any,
    ) -> None:
        if not (failed or since or event_type or event_ids):
            raise CommandError(
                "Say which events: --failed, --since, --type and/or --id (never all by default)."
            )
        events = StripeEvent.objects.all()
        if failed:
            events = events.filter(status=StripeEventStatus.FAILED)
        if since:
            events = events.filter(received_at__gte=parse_since(since))
        if event_type:
            events = events.filter(type=event_type)
        if event_ids:
            events = events.filter(event_id__in=event_ids)
            missing = set(event_ids) - set(events.values_list("event_id", flat=True))
            if missing:
                self.stderr.write(f"not in the inbox: {', '.join(sorted(missing))}")
        rows = list(events.order_by("stripe_created_at", "id").values_list("pk", "event_id", "type")[:limit])
        self.stdout.write(f"{len(rows)} event(s) to replay")
        if dry_run:
            for _, event_id, kind in rows:
                self.stdout.write(f"  {event_id} {kind}")
            return
        counts = stripe_events_replay(pks=[pk for pk, _, _ in rows], actor=Actor.command("replay_webhooks"))
        for status in sorted(counts):
            self.stdout.write(f"  {status}: {counts[status]}")
        still_failed = StripeEvent.objects.filter(
            pk__in=[pk for pk, _, _ in rows], status=StripeEventStatus.FAILED
        )
        for event_id, error in still_failed.values_list("event_id", "error")[:20]:
            self.stdout.write(f"  failed {event_id}: {error.splitlines()[0] if error else ''}")
