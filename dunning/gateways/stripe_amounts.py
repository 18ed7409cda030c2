"""Amounts between our minor units (ISO 4217 exponents) and Stripe's "smallest currency unit".

They usually agree, but not always (https://docs.stripe.com/currencies):
- Stripe's zero-decimal currencies (amount 500 means ¥500) include MGA, which ISO 4217 gives two minor
  units: our 50000 MGA-minor is Stripe's 500.
- ISK has no minor unit in ISO 4217, but Stripe kept it two-decimal for backwards compatibility and only
  accepts whole krónur: our 5000 ISK is Stripe's 500000.
- UGX is zero-decimal in both (Stripe lists it with the zero-decimal currencies).
- HUF and TWD are two-decimal in both; Stripe treats them as zero-decimal only for payouts, which this
  application never makes.
- BHD, JOD, KWD, OMR and TND are three-decimal in both, but Stripe refuses amounts whose last digit is not 0.

Amounts are never rounded: one that Stripe cannot represent exactly is refused with
:class:`AmountNotRepresentable`, because a silently rounded charge is a wrong charge.
"""

from __future__ import annotations

from customers.currencies import minor_unit_exponent

STRIPE_ZERO_DECIMAL: frozenset[str] = frozenset(
    {
        "BIF",
        "CLP",
        "DJF",
        "GNF",
        "JPY",
        "KMF",
        "KRW",
        "MGA",
        "PYG",
        "RWF",
        "UGX",
        "VND",
        "VUV",
        "XAF",
        "XOF",
        "XPF",
    }
)
STRIPE_THREE_DECIMAL: frozenset[str] = frozenset({"BHD", "JOD", "KWD", "OMR", "TND"})


class AmountNotRepresentable(ValueError):
    """The amount cannot be expressed exactly in the other system's units."""


def stripe_exponent(currency: str) -> int:
    """How many decimals Stripe's API uses for ``currency`` (ISK: 2, though only whole krónur)."""
    code = currency.upper()
    if code in STRIPE_ZERO_DECIMAL:
        return 0
    if code in STRIPE_THREE_DECIMAL:
        return 3
    return 2


def to_stripe_amount(amount_minor: int, currency: str) -> int:
    """Our minor units -> the integer Stripe expects for ``currency``."""
    code = currency.upper()
    ours, theirs = minor_unit_exponent(code), stripe_exponent(code)
    if theirs >= ours:
        amount = amount_minor * 10 ** (theirs - ours)
    else:
        divisor = 10 ** (ours - theirs)
        if amount_minor % divisor:
            raise AmountNotRepresentable(
                f"{amount_minor} {code} minor units is not a whole number of Stripe units "
                f"(Stripe uses {theirs} decimals for {code})"
            )
        amount = amount_minor // divisor
    if code in STRIPE_THREE_DECIMAL and amount % 10:
        raise AmountNotRepresentable(
            f"Stripe only accepts {code} amounts ending in 0 (got {amount}); round the invoice first"
        )
    return amount


def from_stripe_amount(amount: int, currency: str) -> int:
    """Stripe's integer for ``currency`` -> our minor units."""
    code = currency.upper()
    ours, theirs = minor_unit_exponent(code), stripe_exponent(code)
    if ours >= theirs:
        return amount * 10 ** (ours - theirs)
    divisor = 10 ** (theirs - ours)
    if amount % divisor:
        raise AmountNotRepresentable(
            f"Stripe amount {amount} {code} has a fraction that {code} does not have in ISO 4217"
        )
    return amount // divisor
