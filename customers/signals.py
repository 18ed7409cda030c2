"""Signals the customers layer sends, so that every app above it handles its own rows (layers point down).

- ``customer_erasing``: sent by ``customers.privacy.customer_erase`` inside its transaction, with
  ``erasure`` (an :class:`customers.privacy.Erasure`). Each receiver anonymises its app's rows about the
  customer and returns ``{"<table>": rows changed}``; an exception rolls the whole erasure back.
- ``customer_data_requested``: sent by ``customers.privacy.customer_data_export`` with ``customer``. Each
  receiver returns ``{"<section>": [rows as dicts]}`` of what its app holds about the customer.
"""

from __future__ import annotations

from django.dispatch import Signal

customer_erasing = Signal()
customer_data_requested = Signal()
