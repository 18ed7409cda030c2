"""The staff roles (README, "Staff accounts and roles"): four groups with exactly their permissions.

On a fresh database, permissions are only created after every app has migrated (``post_migrate``), so this
migration creates them first. ``migrate`` keeps the groups in step afterwards (``config.roles``).
"""

from django.contrib.auth.management import create_permissions
from django.db import migrations


def create_roles(apps, schema_editor):
    from config.roles import roles_sync

    using = schema_editor.connection.alias
    for app_config in apps.get_app_configs():
        app_config.models_module = True  # historical app configs have none; create_permissions skips them
        create_permissions(app_config, apps=apps, verbosity=0, using=using)
        app_config.models_module = None
    roles_sync(
        group_model=apps.get_model("auth", "Group"),
        permission_model=apps.get_model("auth", "Permission"),
        using=using,
        strict=False,  # permissions of later migrations: migrate's post_migrate step adds them
    )


def remove_roles(apps, schema_editor):
    from config.roles import ROLES

    apps.get_model("auth", "Group").objects.using(schema_editor.connection.alias).filter(name__in=ROLES).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("customers", "0004_payment_method_gateway_id_unique"),
        ("notifications", "0002_default_templates"),
        ("dunning", "0008_stripe_events"),
        ("reporting", "0003_weekly_totals_and_recovery_times"),
    ]

    operations = [migrations.RunPython(create_roles, remove_roles)]
