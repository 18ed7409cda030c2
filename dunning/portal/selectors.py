"""What the portal page shows: the customer's invoices in dunning, the balance, the card, the decline.

Everything a page needs comes from :func:`portal_summary` in a fixed handful of queries (one per table),
whatever the number of invoices.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from django.db.models import Exists, F, OuterRef, Q
from django.utils import timezone
from django.utils.translation import get_language
from django.utils.translation import gettext as _

from customers.models import Contact, ContactRole, Customer, InvoiceStatus, PaymentMethod
from customers.money import format_money
from dunning import state as machine
from dunning.models import AttemptStatus, DeclineCategory, DeclineCode, DunningCase, PaymentAttempt
from notifications.services.outbox import formatting_locale

# Cases whose invoice the customer can still pay here: money arriving recovers them (see dunning.state).
PAYABLE_CASE_STATES = sorted(machine.sources_for(machine.Event.RECOVER))
MAX_LINES_SHOWN = 8


@dataclass(frozen=True)
class LineItem:
    description: str
    quantity: int | None
    amount: str


@dataclass(frozen=True)
class PayableInvoice:
    invoice_id: int
    case_id: int
    case_state: str
    number: str
    due_on: date
    currency: str
    remaining_minor: int
    remaining: str
    lines: list[LineItem]
    more_lines: int
    linked: bool  # the invoice the link was made for


@dataclass(frozen=True)
class CardOnFile:
    payment_method_id: int
    label: str  # "Visa •••• 4242"
    expiry: str  # "12/2027", or "" when unknown
    expired: bool


@dataclass(frozen=True)
class Balance:
    currency: str
    amount_minor: int
    amount: str


@dataclass(frozen=True)
class PortalSummary:
    customer: Customer
    locale: str
    invoices: list[PayableInvoice]
    balances: list[Balance]  # one per currency: amounts in different currencies are never added
    card: CardOnFile | None
    decline_code: str
    decline_message: str
    # Why "Pay now" with the card on file would be pointless ("" when it is offered).
    pay_now_blocked: str
    case_ids: list[int] = field(default_factory=list)

    @property
    def has_balance(self) -> bool:
        return bool(self.invoices)

    @property
    def can_pay_now(self) -> bool:
        return self.has_balance and self.card is not None and not self.pay_now_blocked

    @property
    def total(self) -> str:
        """The amount due in words: "€49.00", or "€49.00 and $12.00" across currencies."""
        amounts = [balance.amount for balance in self.balances]
        if len(amounts) <= 1:
            return "".join(amounts)
        return _("%(first)s and %(last)s") % {"first": ", ".join(amounts[:-1]), "last": amounts[-1]}


def card_label(method: PaymentMethod) -> str:
    brand = method.brand.title() if method.brand else method.get_type_display()
    return f"{brand} •••• {method.last4}" if method.last4 else brand


def _lines(raw: object, currency: str, locale: str) -> tuple[list[LineItem], int]:
    """Invoice lines as stored by the billing system; anything malformed is skipped, never shown raw."""
    items = []
    for entry in raw if isinstance(raw, list) else []:
        if not isinstance(entry, dict) or not str(entry.get("description", "")).strip():
            continue
        quantity = entry.get("quantity")
        amount = entry.get("amount_minor")
        items.append(
            LineItem(
                description=str(entry["description"]).strip()[:200],
                quantity=quantity if isinstance(quantity, int) and quantity != 1 else None,
                amount=format_money(amount, currency, locale) if isinstance(amount, int) else "",
            )
        )
    return items[:MAX_LINES_SHOWN], max(0, len(items) - MAX_LINES_SHOWN)


def payable_cases(*, customer_id: int) -> list[DunningCase]:
    """The customer's cases whose invoice is open with something left to pay, oldest due first."""
    return list(
        DunningCase.objects.filter(
            customer_id=customer_id,
            state__in=PAYABLE_CASE_STATES,
            invoice__status=InvoiceStatus.OPEN,
            invoice__amount_paid_minor__lt=F("invoice__amount_due_minor"),
        )
        .select_related("invoice")
        .order_by("invoice__due_at", "id")
    )


def portal_summary(*, customer: Customer, invoice_id: int | None = None) -> PortalSummary:
    """Everything the portal page shows for ``customer``; ``invoice_id`` is the invoice the link names."""
    locale = formatting_locale(customer.locale, get_language() or "en")
    zone = ZoneInfo(customer.time_zone or "UTC")
    cases = payable_cases(customer_id=customer.pk)
    invoices = []
    totals: dict[str, int] = defaultdict(int)
    for case in cases:
        invoice = case.invoice
        remaining = invoice.amount_due_minor - invoice.amount_paid_minor
        totals[invoice.currency] += remaining
        lines, more = _lines(invoice.lines, invoice.currency, locale)
        invoices.append(
            PayableInvoice(
                invoice_id=invoice.pk,
                case_id=case.pk,
                case_state=case.state,
                number=invoice.number,
                due_on=invoice.due_at.astimezone(zone).date(),
                currency=invoice.currency,
                remaining_minor=remaining,
                remaining=format_money(remaining, invoice.currency, locale),
                lines=lines,
                more_lines=more,
                linked=invoice.pk == invoice_id,
            )
        )
    # The invoice the link names comes first: it is the one the email or banner talked about.
    invoices.sort(key=lambda item: not item.linked)
    balances = [
        Balance(currency=currency, amount_minor=amount, amount=format_money(amount, currency, locale))
        for currency, amount in sorted(totals.items())
    ]

    method = PaymentMethod.objects.filter(customer_id=customer.pk, is_default=True).first()
    card = None
    if method is not None:
        now = timezone.now()
        card = CardOnFile(
            payment_method_id=method.pk,
            label=card_label(method),
            expiry=f"{method.exp_month:02d}/{method.exp_year}"
            if method.exp_month and method.exp_year
            else "",
            expired=method.expires_before(now),
        )

    decline_code, decline_message = _latest_decline([case.invoice_id for case in cases])
    return PortalSummary(
        customer=customer,
        locale=locale,
        invoices=invoices,
        balances=balances,
        card=card,
        decline_code=decline_code,
        decline_message=decline_message,
        pay_now_blocked=pay_now_blocked_reason(cases=cases, method=method) if cases else "",
        case_ids=[case.pk for case in cases],
    )


def pay_now_blocked_reason(*, cases: list[DunningCase], method: PaymentMethod | None) -> str:
    """Why charging the card on file again is pointless, in the customer's words ("" when it is not).

    The same rules as staff retries: never again on a hard-declined card, and never off-session once the
    bank asked the customer to authenticate (a new card, set up on the gateway's page, is confirmed there).
    """
    if method is None:
        return _("There is no card on file. Please add one.")
    if any(case.decline_category == DeclineCategory.AUTHENTICATION_REQUIRED for case in cases):
        return _("Your bank needs you to confirm this payment: add your card again to confirm it.")
    if any(case.hard_declined_payment_method_id == method.pk for case in cases):
        return _("This card can't be charged any more. Please add a different card.")
    if method.expires_before(timezone.now()):
        return _("This card has expired. Please add your new card.")
    return ""


def _latest_decline(invoice_ids: list[int]) -> tuple[str, str]:
    """The most recent decline on these invoices, with its customer message (from the decline table)."""
    if not invoice_ids:
        return "", ""
    latest = (
        PaymentAttempt.objects.filter(invoice_id__in=invoice_ids, status=AttemptStatus.FAILED)
        .order_by("-created_at", "-id")
        .values_list("decline_processor", "decline_code")
        .first()
    )
    if latest is None:
        return "", ""
    processor, code = latest
    message = (
        DeclineCode.objects.filter(processor=processor, code=code)
        .values_list("customer_message", flat=True)
        .first()
    )
    return code, message or _("Your bank declined the payment.")


@dataclass(frozen=True)
class RecentPayment:
    invoice_number: str
    amount: str
    card: str
    paid_at: datetime


def recent_portal_payments(
    *, customer: Customer, within: timedelta = timedelta(days=1)
) -> list[RecentPayment]:
    """Successful charges of the customer's invoices in the last day: what the confirmation page lists."""
    locale = formatting_locale(customer.locale, get_language() or "en")
    attempts = (
        PaymentAttempt.objects.filter(
            invoice__customer_id=customer.pk,
            status=AttemptStatus.SUCCEEDED,
            completed_at__gte=timezone.now() - within,
        )
        .select_related("invoice", "payment_method")
        .order_by("-completed_at", "-id")[:20]
    )
    return [
        RecentPayment(
            invoice_number=attempt.invoice.number,
            amount=format_money(attempt.amount_minor, attempt.currency, locale),
            card=card_label(attempt.payment_method) if attempt.payment_method else "",
            paid_at=attempt.completed_at or attempt.created_at,
        )
        for attempt in attempts
    ]


def customers_for_billing_address(*, email: str, limit: int = 10) -> list[Customer]:
    """Customers whose portal emails go to ``email``: it is one of their billing contacts, or it is their own
    address and they have no billing contact (the recipients the notifications app would choose)."""
    address = email.strip()
    if not address:
        return []
    billing = Contact.objects.filter(role=ContactRole.BILLING)
    return list(
        Customer.objects.filter(
            Q(pk__in=billing.filter(email__iexact=address).values("customer_id"))
            | (Q(email__iexact=address) & ~Exists(billing.filter(customer_id=OuterRef("pk"))))
        ).order_by("pk")[:limit]
    )
