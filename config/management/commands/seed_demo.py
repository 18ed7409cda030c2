"""Load the demo data set. Idempotent: a second run creates nothing more."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from customers.demo import DEMO_CUSTOMER_COUNT, seed_demo_customers


class Command(BaseCommand):
    help = "Load about 200 deterministic demo customers with contacts, cards and invoices in every status."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--customers", type=int, default=DEMO_CUSTOMER_COUNT, help="How many accounts.")

    def handle(self, *args: Any, customers: int, **options: Any) -> None:
        summary = seed_demo_customers(count=customers)
        if summary.customers == 0:
            self.stdout.write(
                f"Demo data already loaded ({summary.skipped_existing} accounts); nothing to do."
            )
            return
        statuses = ", ".join(f"{n} {status}" for status, n in sorted(summary.invoices_by_status.items()))
        self.stdout.write(
            self.style.SUCCESS(
                f"Demo data: {summary.customers} customers, {summary.contacts} contacts, "
                f"{summary.payment_methods} payment methods, {summary.invoices} invoices ({statuses})."
            )
        )
        if summary.skipped_existing:
            self.stdout.write(f"{summary.skipped_existing} accounts already existed and were left alone.")
