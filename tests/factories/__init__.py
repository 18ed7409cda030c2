"""factory-boy factories, one module per app. Import them from here."""

from tests.factories.accounts_csv import account_row, accounts_csv
from tests.factories.customers import (
    ContactFactory,
    CustomerFactory,
    InvoiceFactory,
    PaymentMethodFactory,
)

__all__ = [
    "ContactFactory",
    "CustomerFactory",
    "InvoiceFactory",
    "PaymentMethodFactory",
    "account_row",
    "accounts_csv",
]
