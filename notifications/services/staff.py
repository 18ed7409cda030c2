"""Staff tasks: escalations from dunning and operational alerts, visible in the admin and emailed to the
staff group named by ``NOTIFICATIONS_STAFF_GROUP`` (a Django auth Group; its active members with an
email address receive the ``staff_escalation`` template)."""

from __future__ import annotations

import logging
from datetime import datetime

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from customers.actors import Actor
from customers.models import Customer, Invoice
from customers.money import format_money
from customers.services import audit_record
from notifications import conf
from notifications.models import StaffTask, StaffTaskStatus
from notifications.rendering import TemplateRenderError
from notifications.services.outbox import TemplateSet, notifications_enqueue_staff

logger = logging.getLogger(__name__)


def staff_group_recipients(group: str | None = None) -> list[tuple[str, str]]:
    users = (
        get_user_model()
        .objects.filter(groups__name=group or conf.staff_group(), is_active=True)
        .exclude(email="")
        .order_by("pk")
    )
    return [(user.email, user.get_full_name() or user.get_username()) for user in users]


def staff_task_create(
    *,
    customer_id: int | None,
    case_ref: int | None,
    title: str,
    details: str,
    invoice_id: int | None = None,
    group: str | None = None,
) -> StaffTask:
    """Open a staff task and email the staff group about it (``group``, a Django auth Group name, or the
    ``NOTIFICATIONS_STAFF_GROUP`` setting).

    Idempotent: while an open task with the same title exists for the same case (or customer), that task
    is returned and nobody is emailed again.
    """
    now = timezone.now()
    with transaction.atomic():
        existing = StaffTask.objects.filter(
            case_ref=case_ref, customer_id=customer_id, title=title[:200], status=StaffTaskStatus.OPEN
        ).first()
        if existing is not None:
            return existing
        task = StaffTask.objects.create(
            customer_id=customer_id,
            case_ref=case_ref,
            invoice_id=invoice_id,
            title=title[:200],
            details=details,
            group_name=group or conf.staff_group(),
            created_at=now,
        )
        if customer_id is not None:
            audit_record(
                actor=Actor.system("notifications"),
                action="staff_task.created",
                customer_id=customer_id,
                reason=title[:200],
                details={"staff_task_id": task.pk, "case_ref": case_ref},
            )
        _email_staff(task, now=now)
    return task


def _email_staff(task: StaffTask, *, now: datetime) -> None:
    recipients = staff_group_recipients(task.group_name)
    if not recipients:
        logger.warning(
            "staff task %s: the group %r has no active member with an email address",
            task.pk,
            task.group_name,
        )
        return
    customer = Customer.objects.filter(pk=task.customer_id).first() if task.customer_id else None
    invoice = Invoice.objects.filter(pk=task.invoice_id).first() if task.invoice_id else None
    context = {
        "task_title": task.title,
        "task_details": task.details,
        "admin_url": settings.PORTAL_BASE_URL.rstrip("/")
        + reverse("admin:notifications_stafftask_change", args=[task.pk]),
        "customer_name": customer.name if customer else "",
        "company": customer.company if customer else "",
        "invoice_number": invoice.number if invoice else "",
        "amount": format_money(invoice.amount_due_minor, invoice.currency) if invoice else "",
        "product_name": settings.COMPANY_NAME,
    }
    try:
        compiled, _ = TemplateSet({"staff_escalation"}).get("staff_escalation", conf.default_locale())
        rendered = compiled.render(context, locale=conf.default_locale())
        subject, body_text, body_html = rendered.subject, rendered.body_text, rendered.body_html
    except TemplateRenderError:
        # Staff must hear about it even if someone broke the template.
        logger.exception("the staff_escalation template did not render; sending a plain fallback")
        subject = f"[{settings.COMPANY_NAME} billing] {task.title}"[:255]
        body_text = f"{task.title}\n\n{task.details}\n\n{context['admin_url']}\n"
        body_html = ""
    notifications_enqueue_staff(
        recipients=recipients,
        step_ref=f"staff_task:{task.pk}",
        subject=subject,
        body_text=body_text,
        body_html=body_html,
        now=now,
        customer_id=task.customer_id,
        case_ref=task.case_ref,
        invoice_id=task.invoice_id,
    )


def staff_task_complete(*, task: StaffTask, actor: Actor) -> bool:
    """Mark a task done. Returns False when it already was."""
    with transaction.atomic():
        updated = StaffTask.objects.filter(pk=task.pk, status=StaffTaskStatus.OPEN).update(
            status=StaffTaskStatus.DONE, done_at=timezone.now(), done_by=actor.user
        )
        if updated and task.customer_id is not None:
            audit_record(
                actor=actor,
                action="staff_task.done",
                customer_id=task.customer_id,
                reason=task.title,
                details={"staff_task_id": task.pk},
            )
    return bool(updated)
