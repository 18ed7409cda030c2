"""Indexes the reports need, including two on other apps' tables (created here so that those apps'
migrations stay theirs).

- notifications_notification (sent_at) for case messages: the refresh finds messages sent since last time;
- customers_customer (updated_at): the refresh finds customers changed since last time;
- reporting_casefact: involuntary churn reads cases that ended exhausted or cancelled by closing date, with
  the filter columns, from the index alone on PostgreSQL (INCLUDE) and from a wide partial index on SQLite.
"""

from django.db import migrations

INDEXES = {
    "reporting_notification_sent_idx": (
        "notifications_notification (sent_at) WHERE case_ref IS NOT NULL AND sent_at IS NOT NULL"
    ),
    "reporting_customer_updated_idx": "customers_customer (updated_at)",
}
DIMENSIONS = "policy_version_id, policy_id, currency, segment, first_decline_category"
# name -> (key column, included columns, condition)
FACT_INDEXES = {
    "reporting_fact_churn_idx": (
        "closed_at",
        f"customer_id, {DIMENSIONS}",
        "state IN ('exhausted', 'cancelled')",
    ),
}


def create(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    for name, target in INDEXES.items():
        schema_editor.execute(f"CREATE INDEX IF NOT EXISTS {name} ON {target}")
    for name, (key, included, condition) in FACT_INDEXES.items():
        columns = f"({key}) INCLUDE ({included})" if vendor == "postgresql" else f"({key}, {included})"
        schema_editor.execute(
            f"CREATE INDEX IF NOT EXISTS {name} ON reporting_casefact {columns} WHERE {condition}"
        )


def drop(apps, schema_editor):
    for name in [*INDEXES, *FACT_INDEXES]:
        schema_editor.execute(f"DROP INDEX IF EXISTS {name}")


class Migration(migrations.Migration):
    dependencies = [
        ("reporting", "0001_reporting_tables"),
        ("dunning", "0004_case_claim_token"),
        ("notifications", "0002_default_templates"),
        ("customers", "0002_account_import_and_csv_permissions"),
    ]

    operations = [migrations.RunPython(create, drop, elidable=False)]
