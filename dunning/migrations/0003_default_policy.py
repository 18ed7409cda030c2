"""The default policy, from the seeds: friendly first, retries timed to the customer's morning, escalating
emails, a final notice on day 14, then degrade at the end of the grace period and suspend a week later."""

from django.db import migrations

RETRYABLE = ["soft", "processing"]
STEPS = [
    # day, local hour (None = the failure's time of day), action, template, decline categories
    (0, None, "email", "failure_1", []),
    (0, None, "banner", "banner_payment_failed", []),
    (1, 9, "retry", "", RETRYABLE),
    (3, 10, "email", "failure_2", []),
    (4, 9, "retry", "", RETRYABLE),
    (7, 10, "email", "failure_3", []),
    (8, 9, "retry", "", RETRYABLE),
    (14, 10, "email", "final_notice", []),
    (14, 10, "banner", "banner_final_notice", []),
    (21, 9, "degrade", "", []),
    (21, 9, "webhook", "grace_period_ended", []),
    (28, 9, "suspend", "", []),
    (28, 9, "email", "suspended", []),
    (28, 10, "escalate", "", []),
]


def create(apps, schema_editor):
    Policy = apps.get_model("dunning", "DunningPolicy")
    Step = apps.get_model("dunning", "PolicyStep")
    Version = apps.get_model("dunning", "PolicyVersion")
    if Policy.objects.filter(name="Default").exists():
        return
    policy = Policy.objects.create(
        name="Default",
        description="Catch-all policy: matches every invoice no other policy takes.",
        priority=1000,
        max_retries=4,
        network_retry_cap=15,
        grace_period_days=21,
    )
    frozen = []
    for position, (day, hour, action, template, categories) in enumerate(STEPS, start=1):
        Step.objects.create(
            policy=policy,
            position=position,
            day_offset=day,
            local_hour=hour,
            action=action,
            template_key=template,
            decline_categories=categories,
        )
        frozen.append(
            {
                "day_offset": day,
                "local_hour": hour,
                "action": action,
                "template_key": template,
                "decline_categories": categories,
            }
        )
    Version.objects.create(
        policy=policy,
        number=1,
        steps=frozen,
        max_retries=4,
        network_retry_cap=15,
        grace_period_days=21,
        notes="Shipped with the product.",
    )


def remove(apps, schema_editor):
    apps.get_model("dunning", "PolicyVersion").objects.filter(policy__name="Default").delete()
    apps.get_model("dunning", "DunningPolicy").objects.filter(name="Default").delete()


class Migration(migrations.Migration):
    dependencies = [("dunning", "0002_seed_decline_codes")]
    operations = [migrations.RunPython(create, remove)]
