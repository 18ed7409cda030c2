"""Dunning services: the only code that writes dunning tables. Keyword-only functions.

Import from the submodules: ``cases`` (the case writer, opening cases, recoveries), ``staff`` (admin
actions), ``charging`` (single charges, reconciliation), ``tick`` (the scheduled engine), ``policies``
(publishing, selection), ``declines`` (classification), ``stripe_sync`` (the Stripe webhook inbox, its
handlers, reconciliation and imports), ``retry_owner`` (who retries Stripe's invoices).
"""
