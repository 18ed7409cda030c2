"""CSV import and export of customer accounts.

One row per account, keyed on ``external_id``. The format is described in README.md ("CSV import and
export") and in :mod:`customers.accounts_csv.columns`. Entry points:

- :func:`customers.accounts_csv.services.accounts_import`: validate a stream, then upsert it all or nothing;
- :func:`customers.accounts_csv.services.accounts_export`: stream a queryset of customers out as CSV;
- the admin (preview and confirm) and the ``import_accounts`` / ``export_accounts`` commands call those.
"""
