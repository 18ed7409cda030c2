"""Admin pages of the project layer: staff sign-in records (config/staff_auth/admin.py)."""

from config.staff_auth import admin as staff_auth_admin  # noqa: F401 - registers the ModelAdmins
