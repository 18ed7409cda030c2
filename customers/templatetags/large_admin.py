from __future__ import annotations

from typing import Any

from django import template
from django.contrib.admin.templatetags.base import InclusionAdminNode

from customers.admin_tools import cheap_date_hierarchy

register = template.Library()


@register.tag(name="cheap_date_hierarchy")
def cheap_date_hierarchy_tag(parser: template.base.Parser, token: template.base.Token) -> Any:
    return InclusionAdminNode(
        parser, token, func=cheap_date_hierarchy, template_name="date_hierarchy.html", takes_context=False
    )
