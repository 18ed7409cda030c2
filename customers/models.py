"""Customers, contacts, payment methods, invoices and the audit log: the lowest layer.

Database constraints back every rule that forms also check, because bulk imports, inlines and raw SQL
bypass forms.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

from django.conf import settings
from django.core.files.storage import Storage, default_storage, storages
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import F, Q
from django.utils import timezone

from customers.currencies import CURRENCY_CODES, validate_currency
from customers.money import format_money
from customers.validators import validate_country, validate_locale, validate_time_zone


class EntitlementState(models.TextChoices):
    """What the SaaS product should let the customer do. Dunning moves it; recovery sets it back."""

    ACTIVE = "active", "Active"
    PAST_DUE = "past_due", "Past due"
    DEGRADED = "degraded", "Degraded"
    SUSPENDED = "suspended", "Suspended"
    CANCELLED = "cancelled", "Cancelled"


class Customer(models.Model):
    external_id = models.CharField(
        max_length=100, unique=True, help_text="Your system's id for this account; the key for CSV and API."
    )
    name = models.CharField(max_length=200)
    email = models.EmailField(max_length=254, blank=True)
    company = models.CharField(max_length=200, blank=True)
    segment = models.SlugField(
        db_index=False,  # customer_segment_idx below; a SlugField's own index adds a second, LIKE one
        max_length=50,
        blank=True,
        help_text="Free-form segment used by policy matching, e.g. smb, enterprise.",
    )
    currency = models.CharField(
        max_length=3, default="USD", validators=[validate_currency], help_text="ISO 4217 code, e.g. EUR."
    )
    locale = models.CharField(max_length=16, default="en", validators=[validate_locale])
    time_zone = models.CharField(
        max_length=64,
        default="UTC",
        validators=[validate_time_zone],
        help_text="IANA name, e.g. Europe/Paris.",
    )
    gateway_customer_id = models.CharField(max_length=100, blank=True)
    country = models.CharField(
        max_length=2,
        blank=True,
        db_default="",
        validators=[validate_country],
        help_text="ISO 3166 two-letter code, e.g. US; from the card when blank. Feeds smart retry timing.",
    )
    # The customer's payday as learnt from their earlier payments (learn_retry_timing): a
    # dunning.timing.payday.PaydayPattern as JSON, or null when no pattern stands out.
    payday = models.JSONField(null=True, blank=True, editable=False)
    entitlement_state = models.CharField(
        max_length=16, choices=EntitlementState.choices, default=EntitlementState.ACTIVE
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)
    # Set when the customer's personal data was erased on request (customers.privacy.customer_erase).
    erased_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["name", "id"]
        permissions = [
            ("import_customer", "Can import customers from CSV"),
            ("export_customer", "Can export customers to CSV"),
            ("erase_customer", "Can erase a customer's personal data"),
            ("export_personal_data", "Can export a customer's personal data (JSON)"),
        ]
        constraints = [
            models.CheckConstraint(condition=~Q(external_id=""), name="customer_external_id_not_empty"),
            models.CheckConstraint(
                condition=Q(currency__in=CURRENCY_CODES), name="customer_currency_iso4217"
            ),
            models.CheckConstraint(
                condition=Q(entitlement_state__in=EntitlementState.values), name="customer_entitlement_valid"
            ),
        ]
        indexes = [
            models.Index(fields=["entitlement_state"], name="customer_entitlement_idx"),
            models.Index(fields=["segment"], name="customer_segment_idx"),
            models.Index(fields=["currency"], name="customer_currency_idx"),
            models.Index(fields=["gateway_customer_id"], name="customer_gateway_id_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.external_id})"


class ContactRole(models.TextChoices):
    BILLING = "billing", "Billing"
    PRIMARY = "primary", "Primary"
    TECHNICAL = "technical", "Technical"


class Contact(models.Model):
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="contacts")
    role = models.CharField(max_length=16, choices=ContactRole.choices, default=ContactRole.BILLING)
    name = models.CharField(max_length=200, blank=True)
    email = models.EmailField(max_length=254)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["customer_id", "role", "id"]
        constraints = [
            models.UniqueConstraint(fields=["customer", "role", "email"], name="contact_unique_per_role"),
            models.CheckConstraint(condition=Q(role__in=ContactRole.values), name="contact_role_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.name or self.email} ({self.get_role_display()})"


class PaymentMethodType(models.TextChoices):
    CARD = "card", "Card"
    SEPA_DEBIT = "sepa_debit", "SEPA Direct Debit"
    US_BANK_ACCOUNT = "us_bank_account", "US bank account (ACH)"


class CardFunding(models.TextChoices):
    CREDIT = "credit", "Credit"
    DEBIT = "debit", "Debit"
    PREPAID = "prepaid", "Prepaid"
    UNKNOWN = "unknown", "Unknown"


class PaymentMethod(models.Model):
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="payment_methods")
    type = models.CharField(max_length=20, choices=PaymentMethodType.choices, default=PaymentMethodType.CARD)
    brand = models.CharField(max_length=30, blank=True, help_text="visa, mastercard, amex… or the bank name.")
    last4 = models.CharField(
        max_length=4,
        blank=True,
        validators=[RegexValidator(r"^[0-9]{4}$", "The last four digits must be exactly four digits.")],
    )
    exp_month = models.PositiveSmallIntegerField(null=True, blank=True)
    exp_year = models.PositiveSmallIntegerField(null=True, blank=True)
    gateway_payment_method_id = models.CharField(max_length=100, blank=True)
    funding = models.CharField(
        max_length=10,
        choices=CardFunding.choices,
        default=CardFunding.UNKNOWN,
        db_default=CardFunding.UNKNOWN,
    )
    country = models.CharField(
        max_length=2, blank=True, db_default="", help_text="Issuing country (ISO 3166 two-letter code)."
    )
    is_default = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["customer_id", "-is_default", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["customer"], condition=Q(is_default=True), name="payment_method_one_default"
            ),
            # The gateway's id names one method: a webhook and a portal return recording the same card at
            # the same moment must not make two rows.
            models.UniqueConstraint(
                fields=["customer", "gateway_payment_method_id"],
                condition=~Q(gateway_payment_method_id=""),
                name="payment_method_gateway_id_unique",
            ),
            models.CheckConstraint(
                condition=Q(type__in=PaymentMethodType.values), name="payment_method_type_valid"
            ),
            models.CheckConstraint(
                condition=Q(exp_month__isnull=True) | Q(exp_month__gte=1, exp_month__lte=12),
                name="payment_method_exp_month_range",
            ),
        ]
        indexes = [models.Index(fields=["gateway_payment_method_id"], name="payment_method_gateway_id_idx")]

    def __str__(self) -> str:
        label = self.brand.title() if self.brand else self.get_type_display()
        suffix = f" •••• {self.last4}" if self.last4 else ""
        expiry = f" exp {self.exp_month:02d}/{self.exp_year}" if self.exp_month and self.exp_year else ""
        return f"{label}{suffix}{expiry}"

    def expires_before(self, moment: timezone.datetime) -> bool:
        """True when the card is no longer valid at ``moment`` (cards run to the end of their month)."""
        if not (self.exp_month and self.exp_year):
            return False
        return (self.exp_year, self.exp_month) < (moment.year, moment.month)


class InvoiceStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    OPEN = "open", "Open"
    PAID = "paid", "Paid"
    VOID = "void", "Void"
    UNCOLLECTIBLE = "uncollectible", "Uncollectible"


FINAL_INVOICE_STATUSES: frozenset[str] = frozenset(
    {InvoiceStatus.PAID, InvoiceStatus.VOID, InvoiceStatus.UNCOLLECTIBLE}
)


class Invoice(models.Model):
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="invoices")
    number = models.CharField(max_length=64, unique=True)
    amount_due_minor = models.BigIntegerField(help_text="In minor units (cents): 1234 EUR means €12.34.")
    amount_paid_minor = models.BigIntegerField(default=0)
    currency = models.CharField(
        max_length=3, validators=[validate_currency], help_text="ISO 4217 code, e.g. EUR."
    )
    status = models.CharField(max_length=16, choices=InvoiceStatus.choices, default=InvoiceStatus.OPEN)
    due_at = models.DateTimeField()
    period_start = models.DateTimeField(null=True, blank=True)
    period_end = models.DateTimeField(null=True, blank=True)
    lines = models.JSONField(
        default=list,
        blank=True,
        help_text="Line items and usage: a list of {description, quantity, amount_minor}.",
    )
    gateway = models.CharField(max_length=30, blank=True, help_text="Which gateway issued it, e.g. stripe.")
    gateway_invoice_id = models.CharField(max_length=100, blank=True)
    paid_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-due_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(amount_due_minor__gte=0), name="invoice_amount_due_non_negative"
            ),
            models.CheckConstraint(
                condition=Q(amount_paid_minor__gte=0), name="invoice_amount_paid_non_negative"
            ),
            models.CheckConstraint(
                condition=Q(amount_paid_minor__lte=F("amount_due_minor")), name="invoice_not_overpaid"
            ),
            models.CheckConstraint(condition=Q(currency__in=CURRENCY_CODES), name="invoice_currency_iso4217"),
            models.CheckConstraint(condition=Q(status__in=InvoiceStatus.values), name="invoice_status_valid"),
            models.CheckConstraint(
                condition=Q(period_start__isnull=True)
                | Q(period_end__isnull=True)
                | Q(period_end__gte=F("period_start")),
                name="invoice_period_ordered",
            ),
            # gateway_invoice_id first, so that the unique index also serves lookups by that id alone.
            models.UniqueConstraint(
                fields=["gateway_invoice_id", "gateway"],
                condition=~Q(gateway_invoice_id=""),
                name="invoice_gateway_id_unique",
            ),
        ]
        indexes = [
            models.Index(fields=["-due_at", "-id"], name="invoice_due_desc_idx"),
            models.Index(fields=["status", "due_at"], name="invoice_status_due_idx"),
            models.Index(fields=["customer", "-due_at"], name="invoice_customer_due_idx"),
        ]

    def __str__(self) -> str:
        return self.number

    @property
    def amount_remaining_minor(self) -> int:
        return self.amount_due_minor - self.amount_paid_minor

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_INVOICE_STATUSES

    def format_amount(self, amount_minor: int | None = None, locale: str = "en") -> str:
        return format_money(
            self.amount_due_minor if amount_minor is None else amount_minor, self.currency, locale
        )


class ActorType(models.TextChoices):
    STAFF = "staff", "Staff"
    SYSTEM = "system", "System"
    GATEWAY = "gateway", "Gateway"
    WEBHOOK = "webhook", "Webhook"
    CUSTOMER = "customer", "Customer"


class ActorStamped(models.Model):
    """Who or what made a change: the columns every event table shares (filled from ``Actor.audit_fields``)."""

    actor_type = models.CharField(max_length=16, choices=ActorType.choices)
    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,
    )
    actor_label = models.CharField(max_length=150, blank=True)

    class Meta:
        abstract = True


class AuditEvent(ActorStamped):
    """Who or what changed an account, when and why. Append-only; services write it, nothing edits it."""

    occurred_at = models.DateTimeField(default=timezone.now, db_index=True)
    action = models.CharField(max_length=64)
    customer = models.ForeignKey(
        Customer, null=True, blank=True, on_delete=models.CASCADE, related_name="audit_events", db_index=False
    )
    invoice = models.ForeignKey(
        Invoice, null=True, blank=True, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    reason = models.TextField(blank=True)
    details = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-occurred_at", "-id"]
        # The audit log takes a row per change of anything: few indexes, and partial ones where most rows
        # have no value (system changes have no user, account changes no invoice).
        indexes = [
            models.Index(fields=["customer", "-occurred_at"], name="audit_customer_time_idx"),
            models.Index(fields=["invoice"], condition=Q(invoice__isnull=False), name="audit_invoice_idx"),
            models.Index(
                fields=["actor_user"], condition=Q(actor_user__isnull=False), name="audit_staff_idx"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.occurred_at:%Y-%m-%d %H:%M} {self.action} by {self.actor_label or self.actor_type}"


def account_import_storage() -> Storage:
    """Where uploaded account files wait for confirmation: the ``account_imports`` storage when configured
    (e.g. a private bucket), else the default one. Never a local temporary path, so that the preview and the
    confirmation may run on different servers."""
    return storages["account_imports"] if "account_imports" in settings.STORAGES else default_storage


def _account_import_path(instance: AccountImport, filename: str) -> str:
    return f"account-imports/{instance.pk}.csv"


class AccountImportStatus(models.TextChoices):
    PREVIEWED = "previewed", "Previewed"
    IMPORTING = "importing", "Importing"
    IMPORTED = "imported", "Imported"
    FAILED = "failed", "Failed"
    DISCARDED = "discarded", "Discarded"
    EXPIRED = "expired", "Expired"


class AccountImport(models.Model):
    """A CSV file uploaded in the admin, previewed, and waiting for (or done with) its confirmation.

    The file is deleted once the import is confirmed, discarded or expired; the row stays as a record.
    """

    PENDING_FOR = timedelta(hours=24)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    file = models.FileField(upload_to=_account_import_path, storage=account_import_storage, blank=True)
    original_name = models.CharField(max_length=255)
    size_bytes = models.BigIntegerField()
    sha256 = models.CharField(max_length=64)
    status = models.CharField(
        max_length=16, choices=AccountImportStatus.choices, default=AccountImportStatus.PREVIEWED
    )
    report = models.JSONField(default=dict, blank=True, help_text="Counts and the first errors.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    expires_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=AccountImportStatus.values), name="account_import_status_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.original_name} ({self.get_status_display()})"
