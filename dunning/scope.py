"""Which cases a staff member may see: collections agents work handed-off cases only.

The role is the ``Collections agent`` group, which ``config/roles.py`` keeps in step with the README's role
table (config sits above dunning, so the group's name lives here). A non-superuser member of that group sees
handed-off cases, and the customers who have one, whatever other groups they are in: the group is a
restriction, not only a grant.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Exists, OuterRef, QuerySet

from dunning.models import CaseState, DunningCase

COLLECTIONS_AGENT_GROUP = "Collections agent"


def handed_off_only(user: Any) -> bool:
    """True for members of the collections group (superusers excepted). Cached on the user object, which
    lives for one request."""
    if not getattr(user, "is_authenticated", False) or user.is_superuser:
        return False
    cached = getattr(user, "_dunning_handed_off_only", None)
    if cached is None:
        cached = user.groups.filter(name=COLLECTIONS_AGENT_GROUP).exists()
        user._dunning_handed_off_only = cached
    return bool(cached)


def cases_visible_to(user: Any, cases: QuerySet[DunningCase]) -> QuerySet[DunningCase]:
    return cases.filter(state=CaseState.HANDED_OFF) if handed_off_only(user) else cases


def customers_visible_to(user: Any, customers: QuerySet[Any]) -> QuerySet[Any]:
    if not handed_off_only(user):
        return customers
    handed_off = DunningCase.objects.filter(customer=OuterRef("pk"), state=CaseState.HANDED_OFF)
    return customers.filter(Exists(handed_off))
