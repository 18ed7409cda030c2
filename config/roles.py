"""The staff roles: Django groups holding exactly the permissions of the README's role table.

A migration creates them (``config/migrations/0001_roles.py``) and every ``migrate`` puts them back to this
table (a ``post_migrate`` step, which also covers a fresh database, where permissions only exist once every
app has migrated, and the flush between transactional tests). Hand edits to these four groups do not last:
make another group for a different mix.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ImproperlyConfigured

from dunning.scope import COLLECTIONS_AGENT_GROUP

FINANCE_VIEWER = "Finance viewer"
DUNNING_OPERATOR = "Dunning operator"
COLLECTIONS_AGENT = COLLECTIONS_AGENT_GROUP
BILLING_ADMIN = "Billing admin"

# Everything finance staff read, and nothing else: no change, add or delete. Webhook endpoints are left out
# (their page shows the signing secret), and so are the simulated gateway's test tools.
READS: tuple[str, ...] = (
    "customers.view_customer",
    "customers.view_contact",
    "customers.view_paymentmethod",
    "customers.view_invoice",
    "customers.view_auditevent",
    "customers.view_accountimport",
    "dunning.view_declinecode",
    "dunning.view_dunningpolicy",
    "dunning.view_policystep",
    "dunning.view_policyversion",
    "dunning.view_dunningcase",
    "dunning.view_caseevent",
    "dunning.view_paymentattempt",
    "dunning.view_portalaccess",
    "dunning.view_stripeevent",
    "dunning.view_doublepayment",
    "dunning.view_gatewaycircuit",
    "notifications.view_messagetemplate",
    "notifications.view_notification",
    "notifications.view_banner",
    "notifications.view_stafftask",
    "notifications.view_suppressedaddress",
    "notifications.view_apikey",
    "notifications.view_webhookdelivery",
    "notifications.view_webhookattempt",
    "reporting.view_dashboard",
)

ROLES: dict[str, tuple[str, ...]] = {
    FINANCE_VIEWER: READS,
    DUNNING_OPERATOR: (
        *READS,
        "dunning.retry_dunningcase",
        "dunning.mark_paid_dunningcase",
        "dunning.manage_dunningcase",
        "dunning.send_portal_link",
        "dunning.revoke_portal_links",
        "dunning.refund_doublepayment",
        "dunning.reset_gatewaycircuit",
        "notifications.change_stafftask",
        "notifications.change_notification",
    ),
    # Handed-off cases only: the case admin shows them nothing else (dunning/scope.py).
    COLLECTIONS_AGENT: (
        "customers.view_customer",
        "customers.view_contact",
        "dunning.view_dunningcase",
        "dunning.manage_dunningcase",
        "dunning.mark_paid_dunningcase",
        "dunning.send_portal_link",
    ),
    BILLING_ADMIN: (
        *READS,
        "dunning.add_dunningpolicy",
        "dunning.change_dunningpolicy",
        "dunning.publish_dunningpolicy",
        "dunning.add_policystep",
        "dunning.change_policystep",
        "dunning.delete_policystep",
        "dunning.change_declinecode",
        "notifications.add_messagetemplate",
        "notifications.change_messagetemplate",
        "customers.import_customer",
        "customers.export_customer",
        "notifications.add_apikey",
        "notifications.change_apikey",
        "notifications.view_webhookendpoint",
        "notifications.add_webhookendpoint",
        "notifications.change_webhookendpoint",
        "notifications.delete_webhookendpoint",
        "notifications.change_webhookdelivery",
        "dunning.replay_stripeevent",
    ),
}


def roles_sync(
    *, group_model: Any, permission_model: Any, using: str = "default", strict: bool = True
) -> dict[str, int]:
    """Create the role groups and set each one's permissions to exactly its list. Idempotent.

    Takes the models so a migration can pass its historical ones. Returns the permission count per role.
    Raises ImproperlyConfigured when a listed permission does not exist (the table is out of date), unless
    not ``strict``: a migration runs before later migrations add permissions, which ``migrate``'s own
    ``post_migrate`` step then sets.
    """
    wanted = {name for names in ROLES.values() for name in names}
    found = {
        f"{app_label}.{codename}": pk
        for pk, app_label, codename in permission_model.objects.using(using).values_list(
            "pk", "content_type__app_label", "codename"
        )
        if f"{app_label}.{codename}" in wanted
    }
    missing = sorted(wanted - found.keys())
    if missing and strict:
        raise ImproperlyConfigured(
            f"config/roles.py lists permissions that do not exist: {', '.join(missing)}"
        )
    counts: dict[str, int] = {}
    for name, names in ROLES.items():
        group, _ = group_model.objects.using(using).get_or_create(name=name)
        ids = {found[permission] for permission in names if permission in found}
        if set(group.permissions.values_list("pk", flat=True)) != ids:
            group.permissions.set(ids)
        counts[name] = len(ids)
    return counts


def sync_after_migrate(sender: Any, using: str = "default", **kwargs: Any) -> None:
    """``post_migrate`` receiver: once per ``migrate``, after the last app's permissions were created, and
    only once the roles migration has run (a partial first ``migrate`` leaves the groups to it)."""
    from django.apps import apps
    from django.contrib.auth.models import Group, Permission
    from django.db import connections
    from django.db.migrations.recorder import MigrationRecorder

    with_models = [config for config in apps.get_app_configs() if config.models_module is not None]
    if not with_models or sender is not with_models[-1]:
        return
    if (
        not MigrationRecorder(connections[using])
        .migration_qs.filter(app="config", name="0001_roles")
        .exists()
    ):
        return
    roles_sync(group_model=Group, permission_model=Permission, using=using)
