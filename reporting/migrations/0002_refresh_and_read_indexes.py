"""Indexes the reports need, including two on other apps' tables (created here so that those apps'
migrations stay theirs).

- notifications_notification (sent_at) for case messages: the refresh finds messages sent since last time;
- customers_customer (updated_at): the refresh finds customers changed since last time;
- reporting_casefact: medians of time to recovery read recovered cases of a date range with the filter
  columns, from the index alone on PostgreSQL (INCLUDE) and from a wide partial index on SQLite.
"""

from django.db import migrations

INDEXES = {
    "reporting_notification_sent_idx": (
        "notifications_notification (sent_at) WHERE case_ref IS NOT NULL AND sent_at IS NOT NULL"
    ),
    "reporting_customer_updated_idx": "customers_customer (updated_at)",
}
RECOVERY_COLUMNS = "recovery_seconds, policy_version_id, policy_id, currency, segment, first_decline_category"
RECOVERY_INDEX = {
    "postgresql": (
        f"reporting_casefact (opened_at) INCLUDE ({RECOVERY_COLUMNS}) WHERE recovery_seconds IS NOT NULL"
    ),
    "other": f"reporting_casefact (opened_at, {RECOVERY_COLUMNS}) WHERE recovery_seconds IS NOT NULL",
}


def create(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    for name, target in INDEXES.items():
        schema_editor.execute(f"CREATE INDEX IF NOT EXISTS {name} ON {target}")
    target = RECOVERY_INDEX["postgresql" if vendor == "postgresql" else "other"]
    schema_editor.execute(f"CREATE INDEX IF NOT EXISTS reporting_fact_recovery_idx ON {target}")


def drop(apps, schema_editor):
    for name in [*INDEXES, "reporting_fact_recovery_idx"]:
        schema_editor.execute(f"DROP INDEX IF EXISTS {name}")


class Migration(migrations.Migration):
    dependencies = [
        ("reporting", "0001_reporting_tables"),
        ("dunning", "0004_case_claim_token"),
        ("notifications", "0002_default_templates"),
        ("customers", "0002_account_import_and_csv_permissions"),
    ]

    operations = [migrations.RunPython(create, drop, elidable=False)]
