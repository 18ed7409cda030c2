"""The portal's two forms: the simulated gateway's test-card form and "send me a fresh link".

Messages say what to fix in the customer's words; the templates tie each one to its field
(``aria-describedby``) and list them in a summary at the top of the form.
"""

from __future__ import annotations

import re
from datetime import date

from django import forms
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

EXPIRY = re.compile(r"^\s*(\d{1,2})\s*(?:/|-|\s)?\s*(\d{2}|\d{4})\s*$")
MAX_YEARS_AHEAD = 20


def luhn_valid(digits: str) -> bool:
    """The check digit every card number carries: catches typos before anything is sent anywhere."""
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2 == 1:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


class CardForm(forms.Form):
    """A test card for the simulated gateway. Real card data never reaches this form: with Stripe the
    customer types it on Stripe's page."""

    number = forms.CharField(
        label=_("Card number"),
        max_length=30,
        error_messages={"required": _("Enter your card number.")},
    )
    expiry = forms.CharField(
        label=_("Expiry date (MM/YY)"),
        max_length=9,
        error_messages={"required": _("Enter the expiry date, for example 08/29.")},
    )

    def clean_number(self) -> str:
        raw = self.cleaned_data["number"]
        digits = re.sub(r"[\s-]", "", raw)
        if not digits.isdigit() or not 12 <= len(digits) <= 19:
            raise forms.ValidationError(
                _("Enter the card number as it appears on the card (12 to 19 digits).")
            )
        if not luhn_valid(digits):
            raise forms.ValidationError(_("This card number isn't valid. Check it and try again."))
        return digits

    def clean_expiry(self) -> tuple[int, int]:
        match = EXPIRY.match(self.cleaned_data["expiry"])
        if not match:
            raise forms.ValidationError(_("Enter the expiry date as MM/YY, for example 08/29."))
        month, year = int(match.group(1)), int(match.group(2))
        if len(match.group(2)) == 2:
            year += 2000
        if not 1 <= month <= 12:
            raise forms.ValidationError(_("The month must be between 01 and 12."))
        today = timezone.localdate()
        if (year, month) < (today.year, today.month):
            raise forms.ValidationError(_("This card has expired. Use a card that is still valid."))
        if date(year, month, 1) > date(today.year + MAX_YEARS_AHEAD, 12, 1):
            raise forms.ValidationError(_("Check the expiry year."))
        return month, year


class FreshLinkForm(forms.Form):
    email = forms.EmailField(
        label=_("Your billing email address"),
        max_length=254,
        error_messages={
            "required": _("Enter the email address your invoices are sent to."),
            "invalid": _("Enter an email address, for example name@example.com."),
        },
    )
