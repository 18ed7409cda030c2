"""Load the demo data set. Idempotent: a second run creates nothing more."""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand

from customers.demo import DEMO_CUSTOMER_COUNT, seed_demo_customers
from dunning.demo import seed_demo_dunning
from dunning.demo_history import seed_demo_history


class Command(BaseCommand):
    help = "Load about 200 deterministic demo customers with contacts, cards, invoices and dunning history."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--customers", type=int, default=DEMO_CUSTOMER_COUNT, help="How many accounts.")

    def handle(self, *args: Any, customers: int, **options: Any) -> None:
        summary = seed_demo_customers(count=customers)
        if summary.customers:
            statuses = ", ".join(f"{n} {status}" for status, n in sorted(summary.invoices_by_status.items()))
            self.stdout.write(
                self.style.SUCCESS(
                    f"Demo data: {summary.customers} customers, {summary.contacts} contacts, "
                    f"{summary.payment_methods} payment methods, {summary.invoices} invoices ({statuses})."
                )
            )
        if summary.skipped_existing:
            self.stdout.write(
                f"{summary.skipped_existing} demo accounts already existed and were left alone."
            )
        # Before the replay: its open cases then get smart slots (and explanations) from a learnt model.
        started = time.perf_counter()
        history = seed_demo_history()
        if not history.skipped:
            self.stdout.write(
                self.style.SUCCESS(
                    f"Smart-retry history: {history.cases} past cases with {history.attempts} attempts, "
                    f"{history.topups} top-ups paid on paydays; the model learnt from "
                    f"{history.attempts_counted} retries, {history.customers_with_payday} customers have a "
                    f"payday ({time.perf_counter() - started:.1f} s)."
                )
            )
        dunning = seed_demo_dunning()
        if dunning.cases:
            self.stdout.write(
                self.style.SUCCESS(
                    f"Dunning history: {dunning.cases} failed invoices replayed through {dunning.ticks} ticks; "
                    f"{dunning.new_cards} customers then paid with a new card on the payment page."
                )
            )
        if summary.customers == 0 and not dunning.cases:
            self.stdout.write("Demo data already loaded; nothing to do.")
