"""factory-boy factories, one module per app. Import them from here."""

from tests.factories.customers import (
    ContactFactory,
    CustomerFactory,
    InvoiceFactory,
    PaymentMethodFactory,
)
from tests.factories.notifications import (
    BannerFactory,
    NotificationFactory,
    StaffTaskFactory,
    WebhookEndpointFactory,
)

__all__ = [
    "BannerFactory",
    "ContactFactory",
    "CustomerFactory",
    "InvoiceFactory",
    "NotificationFactory",
    "PaymentMethodFactory",
    "StaffTaskFactory",
    "WebhookEndpointFactory",
]
