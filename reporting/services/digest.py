"""The weekly digest: the headline numbers of the last seven days, by email to finance staff."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from reporting import conf
from reporting.conversion import converted_totals
from reporting.selectors import ReportFilters, dashboard
from reporting.services.refresh import rollups_refresh

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DigestResult:
    sent: bool
    recipients: tuple[str, ...] = ()
    reason: str = ""


def digest_recipients() -> list[str]:
    """REPORTING_DIGEST_RECIPIENTS, or else the active members of the staff group who have an address."""
    configured = conf.digest_recipients()
    if configured:
        return configured
    users = get_user_model().objects.filter(groups__name=conf.staff_group(), is_active=True).exclude(email="")
    return sorted({email.lower() for email in users.values_list("email", flat=True)})


def digest_send(*, today: date | None = None) -> DigestResult:
    """Send the digest for the seven days before ``today`` (Monday to Sunday when sent on a Monday)."""
    if not conf.weekly_digest_enabled():
        return DigestResult(sent=False, reason="the weekly digest is switched off (REPORTING_WEEKLY_DIGEST)")
    recipients = digest_recipients()
    if not recipients:
        logger.warning(
            "reporting: no recipient for the weekly digest (group %r is empty)", conf.staff_group()
        )
        return DigestResult(sent=False, reason="nobody to send it to")
    rollups_refresh()  # the figures as of now, not as of the last tick
    today = today or timezone.localdate()
    filters = ReportFilters(start=today - timedelta(days=7), end=today - timedelta(days=1))
    data = dashboard(filters=filters)
    context = {
        "data": data,
        "headline": data.headline,
        "converted": converted_totals(data.headline.by_currency),
        "url": f"{settings.PORTAL_BASE_URL.rstrip('/')}{reverse('reporting:dashboard')}?{filters.query_string()}",
        "product_name": settings.COMPANY_NAME,
    }
    rate = data.headline.recovery_rate
    subject = f"Recovery digest {filters.start.isoformat()} to {filters.end.isoformat()}: " + (
        f"{rate}% recovered" if rate is not None else "no failed payments"
    )
    message = EmailMultiAlternatives(
        subject=subject,
        body=render_to_string("reporting/email/digest.txt", context),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=recipients,
    )
    message.attach_alternative(render_to_string("reporting/email/digest.html", context), "text/html")
    message.send()
    return DigestResult(sent=True, recipients=tuple(recipients))
