"""A hand-built data set whose every report figure is worked out by hand in tests/test_reporting_metrics.py.

Rows are written directly (cases, attempts, messages) with exact times, because the reports read history:
what matters is what the tables say happened, and the end-to-end tests drive the real services instead.

The report range used with it is Thursday 2026-02-26 to Thursday 2026-04-02: four whole weeks (read from
the weekly rollup) with days left over at both ends (read from the case facts).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from customers.models import Customer, EntitlementState
from dunning.models import (
    AttemptSource,
    AttemptStatus,
    CaseState,
    DunningCase,
    DunningPolicy,
    PaymentAttempt,
    PolicyVersion,
)
from notifications.models import Audience, NotificationStatus
from tests.factories.customers import CustomerFactory, InvoiceFactory
from tests.factories.notifications import NotificationFactory

START = date(2026, 2, 26)
END = date(2026, 4, 2)

CATEGORY = {
    "insufficient_funds": "soft",
    "do_not_honor": "soft",
    "expired_card": "hard",
    "authentication_required": "authentication_required",
    "fraudulent": "fraud",
    "processing_error": "processing",
}


def at(day: str, hour: int = 0) -> datetime:
    return datetime.fromisoformat(day).replace(hour=hour, tzinfo=UTC)


@dataclass
class KnownData:
    customers: dict[str, Customer] = field(default_factory=dict)
    versions: dict[str, PolicyVersion] = field(default_factory=dict)
    cases: dict[int, DunningCase] = field(default_factory=dict)


def default_version() -> PolicyVersion:
    """The Default policy's newest version (the one a case opened today gets)."""
    return PolicyVersion.objects.filter(policy__name="Default").order_by("-number").first()  # type: ignore[return-value]


def gentle_versions() -> tuple[PolicyVersion, PolicyVersion]:
    policy = DunningPolicy.objects.create(name="Gentle", priority=5)
    steps = default_version().steps
    return tuple(  # type: ignore[return-value]
        PolicyVersion.objects.create(
            policy=policy, number=n, steps=steps, max_retries=4, network_retry_cap=15, grace_period_days=21
        )
        for n in (1, 2)
    )


def make_case(
    *,
    customer: Customer,
    version: PolicyVersion,
    opened_at: datetime,
    amount_minor: int,
    first_decline: str,
    attempts: list[tuple[str, str, str]] = (),  # type: ignore[assignment]
    state: str = CaseState.OPEN,
    recovered_after: timedelta | None = None,
    channel: str = "",
    closed_at: datetime | None = None,
    latest_decline: str | None = None,
) -> DunningCase:
    """A case with its invoice and attempts: attempt 1 is the initial failure with ``first_decline``, then
    ``attempts`` as (source, status, decline code) in order."""
    invoice = InvoiceFactory(
        customer=customer, amount_due_minor=amount_minor, currency=customer.currency, due_at=opened_at
    )
    recovered_at = opened_at + recovered_after if recovered_after is not None else None
    latest = latest_decline or first_decline
    case = DunningCase.objects.create(
        invoice=invoice,
        customer=customer,
        policy_version=version,
        state=state,
        amount_minor=amount_minor,
        currency=customer.currency,
        opened_at=opened_at,
        decline_code=latest,
        decline_category=CATEGORY[latest],
        recovered_at=recovered_at,
        recovery_channel=channel,
        recovered_amount_minor=amount_minor if recovered_at else None,
        closed_at=recovered_at or closed_at,
        paused_at=opened_at if state == CaseState.PAUSED else None,
    )
    rows = [(AttemptSource.INITIAL, AttemptStatus.FAILED, first_decline), *attempts]
    for number, (source, status, code) in enumerate(rows, start=1):
        moment = opened_at + timedelta(hours=number - 1)
        if status == AttemptStatus.SUCCEEDED and recovered_at is not None:
            moment = recovered_at
        PaymentAttempt.objects.create(
            invoice=invoice,
            case=case,
            number=number,
            source=source,
            status=status,
            amount_minor=amount_minor,
            currency=customer.currency,
            gateway="simulated",
            decline_processor="stripe" if code else "",
            decline_code=code,
            decline_category=CATEGORY.get(code, ""),
            created_at=moment,
        )
    return case


def sent(case: DunningCase, step: str, *, recipients: int = 1, status: str = NotificationStatus.SENT) -> None:
    """One customer message of ``case`` (to several recipients: still one message)."""
    for n in range(recipients):
        NotificationFactory(
            customer=case.customer,
            case_ref=case.pk,
            step_ref=step,
            recipient=f"r{n}-{case.pk}-{step}@example.com",
            status=status,
            message_key=f"{case.pk}:{step}",
            sent_at=case.opened_at if status == NotificationStatus.SENT else None,
        )


def build_known_data() -> KnownData:
    R, F, S = AttemptSource.RETRY, AttemptStatus.FAILED, AttemptStatus.SUCCEEDED
    data = KnownData()
    c = data.customers
    c["A"] = CustomerFactory(external_id="known-a", currency="EUR", segment="smb")
    c["B"] = CustomerFactory(external_id="known-b", currency="EUR", segment="enterprise")
    c["C"] = CustomerFactory(external_id="known-c", currency="USD", segment="smb")
    c["D"] = CustomerFactory(
        external_id="known-d", currency="JPY", segment="", entitlement_state=EntitlementState.CANCELLED
    )
    c["E"] = CustomerFactory(external_id="known-e", currency="USD", segment="enterprise")
    c["F"] = CustomerFactory(
        external_id="known-f", currency="EUR", segment="smb", entitlement_state=EntitlementState.CANCELLED
    )
    c["G"] = CustomerFactory(external_id="known-g", currency="GBP", segment="smb")
    default = default_version()
    gentle1, gentle2 = gentle_versions()
    data.versions = {"default": default, "gentle1": gentle1, "gentle2": gentle2}
    cases = data.cases
    # 1: the 2nd retry succeeds after exactly 3 days (silent retry).
    cases[1] = make_case(
        customer=c["A"], version=default, opened_at=at("2026-03-02", 10), amount_minor=10_000,
        first_decline="insufficient_funds", attempts=[(R, F, "insufficient_funds"), (R, S, "")],
        state=CaseState.RECOVERED, recovered_after=timedelta(days=3), channel="silent_retry",
    )  # fmt: skip
    # 2: a hard decline, the card is updated 12 hours later and the charge on it succeeds.
    cases[2] = make_case(
        customer=c["A"], version=gentle1, opened_at=at("2026-03-03", 9), amount_minor=5_000,
        first_decline="expired_card", attempts=[(AttemptSource.CARD_UPDATED, S, "")],
        state=CaseState.RECOVERED, recovered_after=timedelta(hours=12), channel="card_updated",
    )  # fmt: skip
    # 3: two failed retries, then the customer pays on the portal from an email, 31 days and 4 hours
    # later. Its latest decline (hard) differs from its first (soft): reports use the first.
    cases[3] = make_case(
        customer=c["B"], version=gentle2, opened_at=at("2026-03-10", 8), amount_minor=20_000,
        first_decline="do_not_honor", attempts=[(R, F, "do_not_honor"), (R, F, "expired_card"),
                                                (AttemptSource.PORTAL, S, "")],
        state=CaseState.RECOVERED, recovered_after=timedelta(days=31, hours=4), channel="email_portal",
        latest_decline="expired_card",
    )  # fmt: skip
    # 4: one failed retry, then paid by bank transfer 8 days later (no successful attempt here).
    cases[4] = make_case(
        customer=c["C"], version=default, opened_at=at("2026-03-16", 12), amount_minor=3_000,
        first_decline="insufficient_funds", attempts=[(R, F, "insufficient_funds")],
        state=CaseState.RECOVERED, recovered_after=timedelta(days=8), channel="paid_outside",
    )  # fmt: skip
    # 5: still open, with a retry in flight (pending attempts are not counted yet).
    cases[5] = make_case(
        customer=c["C"], version=default, opened_at=at("2026-03-20", 12), amount_minor=7_000,
        first_decline="authentication_required", attempts=[(R, AttemptStatus.PENDING, "")],
    )  # fmt: skip
    # 6: a fraud decline; dunning exhausted three days later (the customer has left).
    cases[6] = make_case(
        customer=c["D"], version=default, opened_at=at("2026-03-25"), amount_minor=5_000,
        first_decline="fraudulent", state=CaseState.EXHAUSTED, closed_at=at("2026-03-28"),
    )  # fmt: skip
    # 7: staff retried it the next day and it went through.
    cases[7] = make_case(
        customer=c["B"], version=default, opened_at=at("2026-03-26", 15), amount_minor=8_000,
        first_decline="insufficient_funds", attempts=[(AttemptSource.STAFF, S, "")],
        state=CaseState.RECOVERED, recovered_after=timedelta(days=1), channel="staff",
    )  # fmt: skip
    # 8: the billing system reported a second failure (another initial attempt) between two failed
    # retries; staff cancelled dunning the next day.
    cases[8] = make_case(
        customer=c["A"], version=gentle1, opened_at=at("2026-03-28", 9), amount_minor=4_000,
        first_decline="insufficient_funds",
        attempts=[(AttemptSource.INITIAL, F, "do_not_honor"), (R, F, "insufficient_funds"),
                  (R, F, "insufficient_funds")],
        state=CaseState.CANCELLED, closed_at=at("2026-03-29"),
    )  # fmt: skip
    # 9: opened before the range, exhausted inside it: churn counts it, the cohort does not.
    cases[9] = make_case(
        customer=c["G"], version=default, opened_at=at("2026-02-10"), amount_minor=9_000,
        first_decline="insufficient_funds", state=CaseState.EXHAUSTED, closed_at=at("2026-03-05"),
    )  # fmt: skip
    # 10: opened after the range.
    cases[10] = make_case(
        customer=c["C"], version=default, opened_at=at("2026-04-05"), amount_minor=1_000,
        first_decline="insufficient_funds",
    )  # fmt: skip
    # 11: in the days before the first whole week; paid on the portal from a banner 30 hours later.
    cases[11] = make_case(
        customer=c["C"], version=default, opened_at=at("2026-02-27", 10), amount_minor=2_000,
        first_decline="insufficient_funds", attempts=[(AttemptSource.PORTAL, S, "")],
        state=CaseState.RECOVERED, recovered_after=timedelta(hours=30), channel="banner_portal",
    )  # fmt: skip
    # 12: in the days after the last whole week; paused by staff, still at risk.
    cases[12] = make_case(
        customer=c["B"], version=gentle2, opened_at=at("2026-04-01", 11), amount_minor=6_000,
        first_decline="processing_error", state=CaseState.PAUSED,
    )  # fmt: skip
    # Messages: case 1 had two (one of them to two contacts), case 3 three sent and one suppressed, case 4
    # one sent and one skipped. A staff alert about case 3 is not a customer message.
    sent(cases[1], "s1", recipients=2)
    sent(cases[1], "s2")
    for step in ("s1", "s2", "s3"):
        sent(cases[3], step)
    sent(cases[3], "s4", status=NotificationStatus.SUPPRESSED)
    sent(cases[4], "s1")
    sent(cases[4], "s2", status=NotificationStatus.SKIPPED)
    NotificationFactory(
        customer=None,
        recipient_name="Finance",
        case_ref=cases[3].pk,
        step_ref="escalation",
        audience=Audience.STAFF,
        status=NotificationStatus.SENT,
        recipient="staff@example.com",
        message_key=f"{cases[3].pk}:escalation",
    )
    return data
