"""factory-boy factories, one module per app. Import them from here."""

from tests.factories.customers import (
    ContactFactory,
    CustomerFactory,
    InvoiceFactory,
    PaymentMethodFactory,
)
from tests.factories.dunning import TEST_ACTOR, failed_invoice, make_policy

__all__ = [
    "TEST_ACTOR",
    "ContactFactory",
    "CustomerFactory",
    "InvoiceFactory",
    "PaymentMethodFactory",
    "failed_invoice",
    "make_policy",
]
