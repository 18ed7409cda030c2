"""The hosted payment-update portal: login-free signed links where customers fix their payment method.

- ``tokens``: making and reading the signed links (``portal_link_for``, ``portal_token_read``);
- ``selectors``: what the page shows; ``services``: what its buttons do (and staff link actions);
- ``views``, ``urls``, ``forms``, ``security`` (headers, rate limits), ``log_redaction``.

Templates are under ``dunning/templates/portal/``; CSS and JS under ``static/portal/``.
"""
