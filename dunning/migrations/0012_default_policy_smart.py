"""The shipped Default policy moves to smart retry timing (issue "Smart retries").

Four retries for soft and processing declines, each placed by the model inside a window, spread over the
whole sequence rather than the first eight days (the seeds: 42 % of recoveries come after day 14). Emails,
banners and access steps keep their days. Only a Default nobody edited is changed: its draft steps are
replaced and published as the next version (cases already open keep the version they started with).
"""

import importlib

from django.db import migrations

RETRYABLE = ["soft", "processing"]
# What 0003 shipped: a Default still exactly like it was never edited.
SHIPPED = importlib.import_module("dunning.migrations.0003_default_policy").STEPS
# day, local hour (the window opens then, and the hour kept when the model has no reason to move), action, template, categories, smart window in days (None: fixed)
SMART = [
    (0, None, "email", "failure_1", [], None),
    (0, None, "banner", "banner_payment_failed", [], None),
    (1, 9, "retry", "", RETRYABLE, 2),  # days 1-2
    (3, 10, "email", "failure_2", [], None),
    (4, 9, "retry", "", RETRYABLE, 3),  # days 4-6
    (7, 10, "email", "failure_3", [], None),
    (10, 9, "retry", "", RETRYABLE, 4),  # days 10-13
    (14, 10, "email", "final_notice", [], None),
    (14, 10, "banner", "banner_final_notice", [], None),
    (16, 9, "retry", "", RETRYABLE, 5),  # days 16-20, after the final notice
    (21, 9, "degrade", "", [], None),
    (21, 9, "webhook", "grace_period_ended", [], None),
    (28, 9, "suspend", "", [], None),
    (28, 9, "email", "suspended", [], None),
    (28, 10, "escalate", "", [], None),
]


def _frozen(day, hour, action, template, categories, window=None):
    step = {
        "day_offset": day,
        "local_hour": hour,
        "action": action,
        "template_key": template,
        "decline_categories": categories,
    }
    if window is not None:
        step.update(timing="smart", window_days=window)
    return step


def forward(apps, schema_editor):
    Policy = apps.get_model("dunning", "DunningPolicy")
    Step = apps.get_model("dunning", "PolicyStep")
    Version = apps.get_model("dunning", "PolicyVersion")
    policy = Policy.objects.filter(name="Default").first()
    if policy is None:
        return
    latest = Version.objects.filter(policy=policy).order_by("-number").first()
    shipped = [_frozen(*row) for row in SHIPPED]
    draft = [
        _frozen(s.day_offset, s.local_hour, s.action, s.template_key, list(s.decline_categories or []))
        for s in Step.objects.filter(policy=policy).order_by("position")
    ]
    if latest is None or latest.number != 1 or latest.steps != shipped or draft != shipped:
        return  # edited by its owners: theirs to change
    Step.objects.filter(policy=policy).delete()
    for position, (day, hour, action, template, categories, window) in enumerate(SMART, start=1):
        Step.objects.create(
            policy=policy,
            position=position,
            day_offset=day,
            local_hour=hour,
            action=action,
            template_key=template,
            decline_categories=categories,
            timing="smart" if window is not None else "fixed",
            window_days=window or 0,
        )
    Version.objects.create(
        policy=policy,
        number=2,
        steps=[_frozen(*row) for row in SMART],
        max_retries=policy.max_retries,
        network_retry_cap=policy.network_retry_cap,
        grace_period_days=policy.grace_period_days,
        smart_min_success_percent=policy.smart_min_success_percent,
        retry_min_spacing_hours=policy.retry_min_spacing_hours,
        notes="Shipped with the product: smart retry timing.",
    )


class Migration(migrations.Migration):
    dependencies = [("dunning", "0011_smart_retry_data")]
    operations = [migrations.RunPython(forward, migrations.RunPython.noop)]
