"""The template language available to staff-edited message templates: Django's, minus anything that reaches
outside the context.

Left out, on purpose:
- ``{% load %}``: no other tag library can be pulled in;
- ``{% include %}``, ``{% extends %}``, ``{% block %}``: no file on disk is ever read;
- ``{% debug %}`` (dumps the context and ``sys.modules``), ``{% url %}``, ``{% csrf_token %}``;
- the ``pprint`` filter (prints the repr of whatever it gets).

The engine in ``notifications.rendering`` uses this module as its only builtin library and has no
loaders, no context processors and no libraries. Variables and attributes starting with an underscore
are refused by Django's own parser, and the context holds only plain values (strings, numbers, dates),
so there is no object graph to walk.
"""

from __future__ import annotations

from django.template import Library, defaultfilters, defaulttags

DISALLOWED_TAGS: frozenset[str] = frozenset(
    {"load", "include", "extends", "block", "debug", "url", "csrf_token", "ssi"}
)
DISALLOWED_FILTERS: frozenset[str] = frozenset({"pprint"})

register = Library()

for _name, _compile in defaulttags.register.tags.items():
    if _name not in DISALLOWED_TAGS:
        register.tags[_name] = _compile

for _name, _filter in defaultfilters.register.filters.items():
    if _name not in DISALLOWED_FILTERS:
        register.filters[_name] = _filter
