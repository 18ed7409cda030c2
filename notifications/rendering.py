"""Rendering message templates in a sandbox, with only the documented variables.

The context is a plain dict of strings, numbers and dates built here from the customer, contact,
invoice and payment method (never the model instances themselves), plus the extra values dunning
computes. Anything else a caller passes is dropped; anything not in the documented list renders as
nothing. The engine has no loaders, no context processors and a reduced builtin library
(``notifications.sandbox``), so a template cannot read settings, files or other objects.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from babel.dates import format_date
from django.conf import settings
from django.template import Context, Engine, Template, TemplateSyntaxError
from django.template.base import Lexer, TokenType
from django.utils import translation

from customers.money import format_money
from notifications.sandbox import DISALLOWED_TAGS

if TYPE_CHECKING:
    from customers.models import Customer, Invoice, PaymentMethod

# Documented variables, with what they hold. README.md lists the same table.
CUSTOMER_VARIABLES: dict[str, str] = {
    "customer_name": "The customer's name.",
    "contact_name": "The recipient's name (the contact, or the customer when mailing the customer).",
    "company": "The customer's company.",
    "product_name": "Your product or company name (the COMPANY_NAME setting).",
    "plan": "The plan or first line item of the invoice.",
    "amount": "The amount still due, formatted for the customer's locale, e.g. €49.00.",
    "currency": "ISO 4217 code of the invoice, e.g. EUR.",
    "invoice_number": "The invoice number.",
    "card_brand": "Brand of the default payment method, e.g. Visa.",
    "card_last4": "Last four digits of the default payment method.",
    "card_expiry": "Expiry of the default card, MM/YYYY.",
    "usage_summary": "The invoice's line items in one line, e.g. 'Team plan, 3 × Extra seat'.",
    "decline_reason": "What the bank said, in words for the customer.",
    "access_affected_on": "The date access will be affected, formatted for the locale.",
    "access_affected_on_iso": "The same date as YYYY-MM-DD.",
    "portal_url": "The one-click link to the payment page.",
    "case_day": "Days since the payment first failed.",
}
STAFF_VARIABLES: dict[str, str] = {
    "task_title": "The staff task's title.",
    "task_details": "The staff task's details.",
    "admin_url": "Link to the task (or the object) in the admin.",
    "customer_name": "The customer's name, if the task is about a customer.",
    "company": "The customer's company.",
    "invoice_number": "The invoice number, if any.",
    "amount": "The amount due on that invoice, formatted.",
    "product_name": "Your product or company name.",
}
STAFF_TEMPLATE_KEYS: frozenset[str] = frozenset({"staff_escalation"})

MAX_SUBJECT_LENGTH = 255


def variables_for(key: str) -> dict[str, str]:
    return STAFF_VARIABLES if key in STAFF_TEMPLATE_KEYS else CUSTOMER_VARIABLES


class _SandboxEngine(Engine):
    # Replaces Django's defaulttags/defaultfilters/loader_tags with the reduced copy.
    default_builtins = ["notifications.sandbox"]


_ENGINE = _SandboxEngine(loaders=[], context_processors=[], string_if_invalid="", autoescape=True)
# Used only by validation: an unknown variable renders as a marker we can find in the output.
_MISSING = "\x00missing:%s\x00"
_CHECK_ENGINE = _SandboxEngine(loaders=[], context_processors=[], string_if_invalid=_MISSING)
_MISSING_RE = re.compile("\x00missing:([^\x00]*)\x00")
_LINE_BREAKS = re.compile(r"[\r\n\t\v\f\x85\u2028\u2029]+")


class TemplateRenderError(Exception):
    """A template that cannot be compiled or rendered, with a message for staff."""


@dataclass(frozen=True)
class RenderedMessage:
    subject: str
    body_text: str
    body_html: str


@dataclass(frozen=True)
class TemplateSource:
    """The three parts of a template: a MessageTemplate row, or a form's unsaved values."""

    key: str
    subject: str
    body_text: str
    body_html: str = ""


def _check_tags(source: str, part: str) -> None:
    for token in Lexer(source).tokenize():
        if token.token_type == TokenType.BLOCK:
            name = token.contents.split(maxsplit=1)[0] if token.contents.strip() else ""
            if name in DISALLOWED_TAGS:
                raise TemplateRenderError(
                    f"{part}: the {{% {name} %}} tag is not allowed in message templates."
                )


def _compile(source: str, part: str, engine: Engine = _ENGINE) -> Template:
    _check_tags(source, part)
    try:
        return engine.from_string(source)
    except TemplateSyntaxError as exc:
        raise TemplateRenderError(f"{part}: {exc}") from exc


def _plain(value: object) -> object:
    """Only plain values get into a template context: never a model instance or anything with methods
    worth calling."""
    if value is None or isinstance(value, str | int | float | Decimal | date | datetime | bool):
        return value
    return str(value)


def clean_context(key: str, context: Mapping[str, object]) -> dict[str, object]:
    allowed = variables_for(key)
    return {name: _plain(context.get(name, "")) for name in allowed}


class CompiledTemplate:
    """A template's three parts compiled once, rendered for many recipients."""

    def __init__(self, source: TemplateSource, engine: Engine = _ENGINE) -> None:
        self.key = source.key
        self.subject = _compile(source.subject, "Subject", engine)
        self.body_text = _compile(source.body_text, "Text body", engine)
        self.body_html = _compile(source.body_html, "HTML body", engine) if source.body_html.strip() else None

    def render(self, context: Mapping[str, object], *, locale: str = "en") -> RenderedMessage:
        values = clean_context(self.key, context)
        locale = locale or "en"
        try:
            # Switching is skipped when the language is already active: a batch renders thousands.
            with nullcontext() if translation.get_language() == locale else translation.override(locale):
                subject = self.subject.render(Context(values, autoescape=False))
                body_text = self.body_text.render(Context(values, autoescape=False))
                body_html = self.body_html.render(Context(values, autoescape=True)) if self.body_html else ""
        except TemplateRenderError:
            raise
        except Exception as exc:  # a filter given the wrong type, a bad date format…
            raise TemplateRenderError(f"The template did not render: {exc}") from exc
        # A subject is one header line: no newline may reach the message headers.
        subject = _LINE_BREAKS.sub(" ", subject).strip()[:MAX_SUBJECT_LENGTH]
        return RenderedMessage(subject=subject, body_text=body_text.strip() + "\n", body_html=body_html)


def validate_template(source: TemplateSource) -> list[str]:
    """Everything wrong with a template, in words for staff; empty when it compiles and renders."""
    errors: list[str] = []
    if not source.subject.strip():
        errors.append("Subject: it is empty.")
    if not source.body_text.strip():
        errors.append("Text body: it is empty; every email has a plain-text part.")
    try:
        compiled = CompiledTemplate(source, engine=_CHECK_ENGINE)
        rendered = compiled.render(sample_context(source.key))
    except TemplateRenderError as exc:
        return [*errors, str(exc)]
    unknown: set[str] = set()
    for part in (rendered.subject, rendered.body_text, rendered.body_html):
        unknown.update(_MISSING_RE.findall(part))
    if unknown:
        allowed = ", ".join(sorted(variables_for(source.key)))
        errors.append(f"Unknown variable(s): {', '.join(sorted(unknown))}. Available: {allowed}.")
    return errors


# --- Building the context ------------------------------------------------------------------------------


def _format_date(value: date | None, locale: str) -> str:
    if value is None:
        return ""
    try:
        return format_date(value, format="long", locale=(locale or "en").replace("-", "_"))
    except (ValueError, LookupError):
        return format_date(value, format="long", locale="en")


def _usage_summary(lines: object) -> str:
    if not isinstance(lines, list):
        return ""
    parts = []
    for line in lines:
        if not isinstance(line, dict) or not line.get("description"):
            continue
        quantity = line.get("quantity", 1)
        parts.append(
            str(line["description"]) if quantity in (1, None, "") else f"{quantity} × {line['description']}"
        )
    return ", ".join(parts)


def customer_context(
    *,
    customer: Customer,
    contact_name: str = "",
    invoice: Invoice | None = None,
    payment_method: PaymentMethod | None = None,
    extra: Mapping[str, object] | None = None,
    locale: str | None = None,
) -> dict[str, object]:
    """The documented variables for a customer message. ``extra`` (from dunning) fills the rest and may
    override what is derived here, e.g. a plan name the invoice lines do not carry. Amounts and dates are
    formatted for ``locale`` (the customer's by default)."""
    locale = locale or customer.locale or "en"
    extra = dict(extra or {})
    values: dict[str, object] = {
        "customer_name": customer.name,
        "contact_name": contact_name or customer.name,
        "company": customer.company,
        "product_name": settings.COMPANY_NAME,
        "plan": "",
        "amount": "",
        "currency": "",
        "invoice_number": "",
        "card_brand": "",
        "card_last4": "",
        "card_expiry": "",
        "usage_summary": "",
        "decline_reason": "",
        "access_affected_on": "",
        "access_affected_on_iso": "",
        "portal_url": "",
        "case_day": "",
    }
    if invoice is not None:
        lines = invoice.lines if isinstance(invoice.lines, list) else []
        first = lines[0] if lines and isinstance(lines[0], dict) else {}
        values.update(
            plan=str(first.get("description", "")),
            # The caller's amount (a receipt states what was paid) saves formatting one here.
            amount=extra.get("amount")
            or format_money(invoice.amount_due_minor - invoice.amount_paid_minor, invoice.currency, locale),
            currency=invoice.currency,
            invoice_number=invoice.number,
            usage_summary=_usage_summary(lines),
        )
    if payment_method is not None:
        values.update(
            card_brand=(payment_method.brand or payment_method.get_type_display()).title(),
            card_last4=payment_method.last4,
            card_expiry=(
                f"{payment_method.exp_month:02d}/{payment_method.exp_year}"
                if payment_method.exp_month and payment_method.exp_year
                else ""
            ),
        )
    access = extra.pop("access_affected_on", None)
    if isinstance(access, datetime):
        access = access.date()
    if isinstance(access, date):
        values["access_affected_on"] = _format_date(access, locale)
        values["access_affected_on_iso"] = access.isoformat()
    elif access:
        values["access_affected_on"] = str(access)
    for name, value in extra.items():
        if name in CUSTOMER_VARIABLES and value not in (None, ""):
            values[name] = value
    return values


def sample_context(key: str) -> dict[str, object]:
    """Realistic values for previews, validation and test sends."""
    if key in STAFF_TEMPLATE_KEYS:
        return {
            "task_title": "Call Acme Corp about invoice INV-004217",
            "task_details": "Three retries failed (insufficient funds). The customer asked for a call.",
            "admin_url": f"{settings.PORTAL_BASE_URL}/admin/",
            "customer_name": "Ada Lovelace",
            "company": "Acme Corp",
            "invoice_number": "INV-004217",
            "amount": format_money(4900, "EUR", "en"),
            "product_name": settings.COMPANY_NAME,
        }
    return {
        "customer_name": "Ada Lovelace",
        "contact_name": "Ada",
        "company": "Acme Corp",
        "product_name": settings.COMPANY_NAME,
        "plan": "Team plan",
        "amount": format_money(4900, "EUR", "en"),
        "currency": "EUR",
        "invoice_number": "INV-004217",
        "card_brand": "Visa",
        "card_last4": "4242",
        "card_expiry": "08/2027",
        "usage_summary": "Team plan, 3 × Extra seat",
        "decline_reason": "Your bank declined the payment because of insufficient funds.",
        "access_affected_on": _format_date(date(2030, 4, 3), "en"),
        "access_affected_on_iso": "2030-04-03",
        "portal_url": f"{settings.PORTAL_BASE_URL}/portal/sample-token/",
        "case_day": 5,
    }


def render_preview(
    source: TemplateSource, context: Mapping[str, Any], *, locale: str = "en"
) -> RenderedMessage:
    return CompiledTemplate(source).render(context, locale=locale)
