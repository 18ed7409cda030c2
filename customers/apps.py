from django.apps import AppConfig


class CustomersConfig(AppConfig):
    """Customers, contacts, payment methods, invoices and balances: the lowest layer."""

    name = "customers"
    verbose_name = "Customers and invoices"
