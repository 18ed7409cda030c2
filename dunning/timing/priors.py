"""Built-in priors: what public knowledge says about retry timing, before this installation has evidence.

Every number here is a *judgement* anchored in the sources below, not a measurement: no public source gives
per-hour success rates we could copy. The model treats them as pseudo-counts (``LEVEL_PRIOR_STRENGTH``
attempts per level, ``BASE_PRIOR_STRENGTH`` for the base rate), so an installation's own data overrides them
after a few hundred attempts. Multipliers are odds ratios (1.0 = no effect), applied to the base odds.

Sources (also in the README section "Smart retries: the timing model"):

[S1] Stripe, "Automate payment retries" (Smart Retries), docs.stripe.com/billing/revenue-recovery/smart-retries:
     retry timing is learnt from time-dependent signals, e.g. "payments made for debit cards in certain
     countries might be slightly more successful at 12:01 AM in local time zones"; recommended default is
     8 tries within 2 weeks.
[S2] Recurly, "What can affect decline retries", support.recurly.com (article 360025268652) and
     docs.recurly.com/docs/retry-logic: retries for "Try Again/Gateway Error" every 2 days, issuer
     unavailable every 3 days, communication errors first 4 hours apart; soft declines (insufficient funds,
     generic) are retried, hard declines never.
[S3] Seed article 000 (shared/seeds): smart retries use "time of day, day of week, day of month (paydays),
     decline code history"; first retry 24-48 h after the failure; "after three failed retries, continued
     attempts rarely succeed".
[S4] Seed article 001: "the first 48 hours after a failure are the highest-yield window"; three retries over
     7-14 days outperform six in 48 hours.
[S5] Pay calendars: US Bureau of Labor Statistics, "Length of pay periods in the Current Employment
     Statistics survey" (bi-weekly is the most common US pay frequency, then weekly; semi-monthly 1st/15th is
     the usual salaried calendar). That US pay days fall mostly on Fridays, UK monthly pay on the last working
     day, euro-area pay at the end of the month (German BGB section 614: pay is due after the period worked)
     and Australian pay fortnightly are payroll conventions, stated here as judgement, not as measured shares.
     Detail in ``payday.default_payday``.
[S6] Card-network retry rules: Visa's excessive-reattempt rules (at most 15 reattempts of a card in 30 days,
     never for "do not retry" responses) and Mastercard merchant advice codes: retries of hard, fraud and
     authentication declines are prohibited or pointless, hence their tiny base rates.
"""

from __future__ import annotations

# Pseudo-attempts behind the base rate of a code or category (judgement: about two weeks of a small shop).
BASE_PRIOR_STRENGTH = 50.0
# Pseudo-attempts behind each level's prior. Judgement, revised after the simulation (bench/smart_sim.py):
# at 30, a hundred attempts per weekday were enough for noise to pick the slot (the choice takes the best
# of many candidates, so it chases noise: the winner's curse); at 100, a level needs a few hundred
# attempts to move far from its prior.
LEVEL_PRIOR_STRENGTH = 100.0

FUNDS = "funds"
TEMPORARY = "temporary"
GENERIC = "generic"
NO_RETRY = "no_retry"

# Decline codes whose cause is money or a spending limit: they recover when money arrives [S5].
FUNDS_CODES: frozenset[str] = frozenset(
    {"insufficient_funds", "card_velocity_exceeded", "withdrawal_count_limit_exceeded", "R01", "R09"}
)
# Codes that mean "the system, not the customer": they recover within hours [S2].
TEMPORARY_CODES: frozenset[str] = frozenset(
    {
        "processing_error",
        "issuer_not_available",
        "reenter_transaction",
        "try_again_later",
        "duplicate_transaction",
        "not_charged",
        "gateway_error",
    }
)
NO_RETRY_CATEGORIES: frozenset[str] = frozenset({"hard", "fraud", "authentication_required"})

# Success probability of one retry, per group (judgement; [S3]/[S4] put overall recovery of soft declines
# by retries at a fraction of failed payments spread over several attempts, so one attempt is well under 50 %).
BASE_BY_GROUP: dict[str, float] = {FUNDS: 0.15, TEMPORARY: 0.40, GENERIC: 0.12, NO_RETRY: 0.02}
# A few codes differ from their group (judgement).
BASE_BY_CODE: dict[str, float] = {
    "processing_error": 0.45,
    "issuer_not_available": 0.40,
    "try_again_later": 0.30,
    "duplicate_transaction": 0.30,
    "do_not_honor": 0.10,
    "R09": 0.25,
}
BASE_BY_CATEGORY: dict[str, float] = {"fraud": 0.01, "authentication_required": 0.03, "hard": 0.02}

# Attempts decay with the retry number for every retryable group [S3]: "after three failed retries,
# continued attempts rarely succeed".
RETRY_NUMBER_MULTIPLIERS: dict[str, float] = {"1": 1.0, "2": 0.85, "3": 0.7, "4+": 0.55}

# Odds ratios per group, feature and level (judgement, directions from the sources cited on each line).
MULTIPLIERS: dict[str, dict[str, dict[str, float]]] = {
    FUNDS: {
        # Money arrives on payday and is spent over the following days [S3], [S5].
        "payday_days": {"0": 1.6, "1": 1.8, "2": 1.4, "3-6": 1.05, "7-13": 0.8, "14+": 0.7},
        # US weekly and bi-weekly pay lands on Fridays [S5]; weekend charges meet Friday's deposit.
        "weekday": {"fri": 1.15, "sat": 1.1},
        # Funds do not come back within hours; the first retry belongs 24-48 h later [S3].
        "hours_since_failure": {"<6h": 0.5, "6-24h": 0.8, "1-3d": 1.0, "3-7d": 1.05, "7d+": 1.0},
        # Daily debit limits reset at local midnight [S1]; late evening is the weakest hour.
        "hour": {"00-03": 1.1, "06-09": 1.05, "09-12": 1.05, "18-21": 0.9, "21-24": 0.85},
        # Prepaid cards are topped up irregularly and rarely recover on their own (judgement).
        "funding": {"prepaid": 0.7},
        "retry_number": RETRY_NUMBER_MULTIPLIERS,
    },
    TEMPORARY: {
        # Processing errors clear within hours [S2]: Recurly retries communication errors 4 h apart.
        "hours_since_failure": {"<6h": 1.7, "6-24h": 1.4, "1-3d": 1.0, "3-7d": 0.75, "7d+": 0.6},
        # Issuers run maintenance at night; business hours are staffed (judgement).
        "hour": {"00-03": 0.85, "03-06": 0.85, "09-12": 1.1, "12-15": 1.1},
        "retry_number": RETRY_NUMBER_MULTIPLIERS,
    },
    GENERIC: {
        # Generic declines are issuer risk decisions: better on weekday business hours, worst on Friday and
        # weekend evenings when fraud screening is strictest and nobody can call the bank [S1], [S3].
        # Friday itself is neutral and the evening is weak, so Friday evening scores below any weekday
        # morning; a naive-Bayes model cannot hold a true Friday-times-evening interaction term.
        "weekday": {"mon": 1.1, "tue": 1.15, "wed": 1.15, "thu": 1.1, "fri": 1.0, "sat": 0.85, "sun": 0.8},
        "hour": {
            "00-03": 0.7,
            "03-06": 0.75,
            "06-09": 0.95,
            "09-12": 1.25,
            "12-15": 1.2,
            "15-18": 1.05,
            "18-21": 0.8,
            "21-24": 0.75,
        },
        # A retry seconds after a risk decline meets the same decision; a day later it often passes [S3], [S4].
        "hours_since_failure": {"<6h": 0.7, "6-24h": 0.9, "1-3d": 1.1, "3-7d": 1.0, "7d+": 0.9},
        "retry_number": RETRY_NUMBER_MULTIPLIERS,
    },
    NO_RETRY: {},
}


def prior_group(code: str, category: str) -> str:
    """Which family of priors a decline belongs to: the category rules first (network rules [S6])."""
    if category in NO_RETRY_CATEGORIES:
        return NO_RETRY
    if code in FUNDS_CODES:
        return FUNDS
    if code in TEMPORARY_CODES or category == "processing":
        return TEMPORARY
    return GENERIC


def prior_base(code: str, category: str) -> float:
    """Prior probability that one retry of this decline succeeds."""
    if category in BASE_BY_CATEGORY:
        return BASE_BY_CATEGORY[category]
    if code in BASE_BY_CODE:
        return BASE_BY_CODE[code]
    return BASE_BY_GROUP[prior_group(code, category)]


def prior_multiplier(code: str, category: str, feature: str, level: str) -> float:
    """Prior odds ratio of a feature level against the decline's base rate (1.0 = no effect)."""
    return MULTIPLIERS[prior_group(code, category)].get(feature, {}).get(level, 1.0)
