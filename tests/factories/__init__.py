"""factory-boy factories, one module per app. Import them from here."""

from tests.factories.accounts_csv import account_row, accounts_csv
from tests.factories.customers import (
    ContactFactory,
    CustomerFactory,
    InvoiceFactory,
    PaymentMethodFactory,
)
from tests.factories.dunning import TEST_ACTOR, failed_invoice, make_policy
from tests.factories.notifications import (
    BannerFactory,
    NotificationFactory,
    StaffTaskFactory,
    WebhookEndpointFactory,
)

__all__ = [
    "TEST_ACTOR",
    "BannerFactory",
    "ContactFactory",
    "CustomerFactory",
    "InvoiceFactory",
    "NotificationFactory",
    "PaymentMethodFactory",
    "StaffTaskFactory",
    "WebhookEndpointFactory",
    "failed_invoice",
    "make_policy",
    "account_row",
    "accounts_csv",
]
