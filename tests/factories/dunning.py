from __future__ import annotations

from datetime import datetime
from typing import Any

from django.utils import timezone

from customers.actors import Actor
from customers.models import Customer, Invoice, PaymentMethod
from dunning.models import DunningCase, DunningPolicy, PolicyStep
from dunning.services.cases import invoice_payment_failed
from dunning.services.policies import policy_publish
from tests.factories.customers import CustomerFactory, InvoiceFactory, PaymentMethodFactory

TEST_ACTOR = Actor.system("test")


def make_policy(
    *,
    name: str,
    steps: list[tuple[int, int | None, str, str, list[str]]],
    priority: int = 10,
    publish: bool = True,
    **fields: Any,
) -> DunningPolicy:
    """A policy with steps given as (day, local hour, action, template key, decline categories)."""
    policy = DunningPolicy.objects.create(name=name, priority=priority, **fields)
    for position, (day, hour, action, template, categories) in enumerate(steps, start=1):
        PolicyStep.objects.create(
            policy=policy,
            position=position,
            day_offset=day,
            local_hour=hour,
            action=action,
            template_key=template,
            decline_categories=categories,
        )
    if publish:
        policy_publish(policy=policy, actor=TEST_ACTOR)
    return policy


def failed_invoice(
    *,
    card: str = "pm_sim_4000000000009995",
    decline_code: str = "insufficient_funds",
    failed_at: datetime | None = None,
    customer: Customer | None = None,
    amount_minor: int = 4900,
    time_zone: str = "Europe/Paris",
    **customer_fields: Any,
) -> tuple[DunningCase, Invoice, PaymentMethod]:
    """An open invoice whose first charge failed, with its case opened through the real service."""
    customer = customer or CustomerFactory(time_zone=time_zone, **customer_fields)
    method = PaymentMethodFactory(customer=customer, gateway_payment_method_id=card, last4=card[-4:])
    invoice = InvoiceFactory(customer=customer, amount_due_minor=amount_minor, gateway="simulated")
    case = invoice_payment_failed(
        invoice=invoice, actor=TEST_ACTOR, decline_code=decline_code, failed_at=failed_at or timezone.now()
    )
    assert case is not None
    return case, invoice, method
