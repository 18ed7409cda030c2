"""``python manage.py erase_customer EXTERNAL_ID --reason TEXT [--yes]``: erase a customer's personal data.

Anonymises the customer and every app's rows about them, keeping amounts, attempts, cases and audit rows
(see README, "Privacy"). Asks for confirmation on a terminal unless ``--yes``; refuses without it elsewhere.
"""

from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from customers.management.commands.import_accounts import command_actor
from customers.models import Customer
from customers.privacy import CustomerAlreadyErased, customer_erase


class Command(BaseCommand):
    help = (
        "Erase a customer's personal data on request (names, emails, contacts, message bodies, portal visits, "
        "stored webhook payloads), keeping the accounting rows. Cannot be undone."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("external_id", help="The customer's external id.")
        parser.add_argument("--reason", required=True, help="Why (recorded in the audit log).")
        parser.add_argument("--yes", action="store_true", help="Do not ask for confirmation.")

    def handle(self, *args: Any, external_id: str, reason: str, yes: bool, **options: Any) -> None:
        customer = Customer.objects.filter(external_id=external_id).first()
        if customer is None:
            raise CommandError(f"No customer has the external id {external_id!r}.", returncode=2)
        if not yes:
            if not sys.stdin.isatty():
                raise CommandError("Add --yes to erase without a terminal to confirm on.", returncode=2)
            answer = input(
                f"Erase the personal data of {customer.external_id} ({customer.name})? Type 'erase': "
            )
            if answer.strip() != "erase":
                raise CommandError("Nothing was erased.", returncode=1)
        try:
            report = customer_erase(customer=customer, actor=command_actor("erase_customer"), reason=reason)
        except (CustomerAlreadyErased, ValueError) as error:
            raise CommandError(str(error), returncode=2) from error
        self.stdout.write(self.style.SUCCESS(f"Erased {external_id}. Rows anonymised:"))
        for table, count in sorted(report.rows.items()):
            if count:
                self.stdout.write(f"  {table}: {count:,}")
