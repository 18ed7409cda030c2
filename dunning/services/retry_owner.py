"""One owner of retries: who retries an invoice that Stripe issued, Stripe or this application.

``STRIPE_RETRY_OWNER=stripe``: Stripe's Smart Retries own them. The tick skips its retry steps for those
invoices, staff cannot "retry now", a new card does not trigger a charge, and cases follow Stripe's
outcome through webhooks. Invoices from elsewhere (CSV, another billing system) are always ours.
"""

from __future__ import annotations

from django.conf import settings

STRIPE = "stripe"
OWNED_BY_GATEWAY_REASON = "Stripe's Smart Retries own retries of this invoice (STRIPE_RETRY_OWNER=stripe)"


def gateway_owns_retries(*, gateway: str, gateway_invoice_id: str) -> bool:
    return bool(gateway_invoice_id) and gateway == STRIPE and settings.STRIPE_RETRY_OWNER == STRIPE
