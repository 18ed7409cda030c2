"""Ship the default message templates so that staff can edit them. Only missing rows are created."""

from django.db import migrations


def install(apps, schema_editor):
    from notifications.default_templates import install_default_templates

    install_default_templates(apps.get_model("notifications", "MessageTemplate"))


class Migration(migrations.Migration):
    dependencies = [("notifications", "0001_initial")]

    operations = [migrations.RunPython(install, migrations.RunPython.noop)]
