"""``python manage.py export_customer_data EXTERNAL_ID [FILE]``: everything held about a customer, as JSON.

FILE defaults to standard output (``-``). The export is recorded in the audit log.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from customers.management.commands.export_accounts import check_target
from customers.management.commands.import_accounts import command_actor
from customers.models import Customer
from customers.privacy import customer_data_export, customer_data_json


class Command(BaseCommand):
    help = "Export everything held about one customer as JSON (a subject access request); it is audited."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("external_id", help="The customer's external id.")
        parser.add_argument("file", nargs="?", default="-", help="Where to write (default: standard output).")

    def handle(self, *args: Any, external_id: str, file: str, **options: Any) -> None:
        customer = Customer.objects.filter(external_id=external_id).first()
        if customer is None:
            raise CommandError(f"No customer has the external id {external_id!r}.", returncode=2)
        if file != "-":
            check_target(file)
        data = customer_data_json(
            customer_data_export(customer=customer, actor=command_actor("export_customer_data"))
        )
        if file == "-":
            self.stdout.write(data.decode())
            return
        try:
            with open(file, "xb") as out:
                out.write(data)
        except FileExistsError as error:
            raise CommandError(f"{file} already exists: choose a new file name.", returncode=2) from error
        except OSError as error:
            raise CommandError(f"{file}: cannot write it ({error.strerror}).") from error
        self.stderr.write(f"Wrote {len(data):,} bytes to {file}.")
