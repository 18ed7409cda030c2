"""Staff sign-in to the admin: MFA (django-otp), login lockout (django-axes), the admin's CSP.

- ``policy``: who must use MFA (the money permissions), and whether a session is verified;
- ``services``: enrolment, verification, backup codes, reset, unlock; each audited;
- ``views`` and ``forms``: the enrolment and verification pages, under ``/admin/mfa/``;
- ``site``: the admin site, which refuses unverified sessions of users who need MFA;
- ``middleware``: the same gate for every page under ``/admin/`` (reports included), and the CSP;
- ``admin``: locked-out logins, with an audited unlock.
"""
