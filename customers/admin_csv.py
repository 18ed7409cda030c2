"""CSV import and export on the customer changelist.

django-import-export provides the buttons, the URLs, the permission hooks and the page layout. The work
itself goes to ``customers.accounts_csv``: a streaming validator and a set-based upsert instead of the
library's row-by-row resource (about 500 rows/s, every row rendered on the confirm page), and a streamed
export with spreadsheet formulae escaped.

Import is preview then confirm. The preview stores the file in the account-import storage and keeps its
counts and first errors in an ``AccountImport`` row, so the confirmation works on any server.
"""

from __future__ import annotations

import uuid
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, StreamingHttpResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.decorators import method_decorator
from django.utils.http import content_disposition_header
from django.utils.text import capfirst
from django.views.decorators.http import require_POST
from import_export.admin import ImportExportMixin

from customers.accounts_csv.columns import COLUMNS
from customers.accounts_csv.services import (
    PREVIEW_ERRORS,
    ImportNotPending,
    ImportReport,
    UnreadableFile,
    account_import_confirm,
    account_import_discard,
    account_import_error_report,
    account_import_preview,
    accounts_export_stream,
)
from customers.actors import Actor
from customers.admin_tools import LargeTableAdminMixin
from customers.models import AccountImport, AccountImportStatus

IMPORT_PERMISSION = "customers.import_customer"
EXPORT_PERMISSION = "customers.export_customer"
# Changelist parameters that are not filters: sorting and the page number.
NOT_FILTERS = frozenset({"o", "p"})


class AccountUploadForm(forms.Form):
    file = forms.FileField(
        label="CSV file",
        help_text="UTF-8, with a header row; commas or semicolons. One row per account.",
    )

    def clean_file(self) -> Any:
        upload = self.cleaned_data["file"]
        limit = settings.ACCOUNT_IMPORT_MAX_UPLOAD_MB * 1024 * 1024
        if upload.size > limit:
            raise forms.ValidationError(
                f"The file is larger than {settings.ACCOUNT_IMPORT_MAX_UPLOAD_MB} MB. Import big files with "
                "'python manage.py import_accounts', which streams them."
            )
        return upload


class AccountImportDecisionForm(forms.Form):
    import_id = forms.UUIDField(widget=forms.HiddenInput)


class AccountExportForm(forms.Form):
    bom = forms.BooleanField(
        label="For Excel",
        required=False,
        initial=True,
        help_text="Starts the file with a UTF-8 byte order mark, so Excel shows accents correctly.",
    )


def changelist_filters(request: HttpRequest) -> dict[str, list[str]]:
    """The filters and search of a changelist URL, as recorded in the export's audit row."""
    return {key: values for key, values in request.GET.lists() if key not in NOT_FILTERS}


def filter_words(changelist: ChangeList) -> list[tuple[str, str]]:
    """The changelist's filters and search as its sidebar names them: ("Currency", "EUR"),
    ("Entitlement state", "Past due"), ("Search", "acme")."""
    asked = set(changelist.params)
    words = []
    for spec in changelist.filter_specs:
        if not asked.intersection(spec.expected_parameters()):
            continue
        chosen = [str(choice["display"]) for choice in spec.choices(changelist) if choice.get("selected")]
        words.append((capfirst(str(spec.title)), ", ".join(chosen)))
    if changelist.query:
        words.append(("Search", changelist.query))
    return words


class AccountCsvAdminMixin(ImportExportMixin):
    """Import and export buttons for the customer changelist, behind their own permissions."""

    import_template_name = "admin/customers/customer/import.html"
    export_template_name = "admin/customers/customer/export.html"

    def has_import_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(IMPORT_PERMISSION)

    def has_export_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(EXPORT_PERMISSION)

    def get_urls(self) -> list[URLPattern]:
        info = self.get_model_info()
        return [
            path(
                "import/<uuid:pk>/",
                self.admin_site.admin_view(self.import_preview_view),
                name="{}_{}_import_preview".format(*info),
            ),
            path(
                "import/<uuid:pk>/errors.csv",
                self.admin_site.admin_view(self.import_errors_view),
                name="{}_{}_import_errors".format(*info),
            ),
            *super().get_urls(),
        ]

    def _context(self, request: HttpRequest, title: str, **extra: Any) -> dict[str, Any]:
        return {
            **self.admin_site.each_context(request),
            "title": title,
            "opts": self.model._meta,
            "columns": COLUMNS,
            "max_upload_mb": settings.ACCOUNT_IMPORT_MAX_UPLOAD_MB,
            **extra,
        }

    def _url(self, name: str, *args: Any) -> str:
        app_label, model_name = self.get_model_info()
        return reverse(f"admin:{app_label}_{model_name}_{name}", args=args)

    def _own_import(self, request: HttpRequest, pk: uuid.UUID) -> AccountImport:
        if not self.has_import_permission(request):
            raise PermissionDenied
        return get_object_or_404(AccountImport, pk=pk, created_by=request.user)

    # --- Import -------------------------------------------------------------------------------------------

    def import_action(self, request: HttpRequest, **kwargs: Any) -> HttpResponse:
        """Upload: store the file, dry-run it, then show the preview (on its own URL, safe to reload)."""
        if not self.has_import_permission(request):
            raise PermissionDenied
        posted = request.method == "POST"
        form = AccountUploadForm(request.POST if posted else None, request.FILES if posted else None)
        if request.method == "POST" and form.is_valid():
            try:
                record = account_import_preview(
                    upload=form.cleaned_data["file"], user=request.user, actor=Actor.staff(request.user)
                )
            except UnreadableFile as error:
                form.add_error("file", str(error))
            else:
                return HttpResponseRedirect(self._url("import_preview", record.pk))
        return TemplateResponse(
            request, self.import_template_name, self._context(request, "Import customers", form=form)
        )

    def import_preview_view(self, request: HttpRequest, pk: uuid.UUID) -> HttpResponse:
        record = self._own_import(request, pk)
        report = ImportReport.from_dict(record.report)
        pending = record.status == AccountImportStatus.PREVIEWED and record.expires_at > timezone.now()
        context = self._context(
            request,
            f"Import {record.original_name}",
            record=record,
            report=report,
            pending=pending,
            can_confirm=pending and report.ok and bool(report.created or report.updated),
            shown_errors=PREVIEW_ERRORS,
            decision_form=AccountImportDecisionForm(initial={"import_id": record.pk}),
        )
        return TemplateResponse(request, self.import_template_name, context)

    def import_errors_view(self, request: HttpRequest, pk: uuid.UUID) -> HttpResponse:
        record = self._own_import(request, pk)
        if not record.file:
            messages.error(request, "The file of this import is gone (confirmed, discarded or expired).")
            return HttpResponseRedirect(self._url("import_preview", pk))
        response = StreamingHttpResponse(
            account_import_error_report(account_import=record), content_type="text/csv; charset=utf-8"
        )
        response["Content-Disposition"] = content_disposition_header(
            as_attachment=True, filename=f"errors-{record.original_name}"
        )
        return response

    @method_decorator(require_POST)
    def process_import(self, request: HttpRequest, **kwargs: Any) -> HttpResponse:
        """Confirm (or discard) a previewed import."""
        if not self.has_import_permission(request):
            raise PermissionDenied
        form = AccountImportDecisionForm(request.POST)
        if not form.is_valid():
            messages.error(request, "That import could not be found; upload the file again.")
            return HttpResponseRedirect(self._url("import"))
        pk = form.cleaned_data["import_id"]
        preview_url = self._url("import_preview", pk)
        try:
            if "discard" in request.POST:
                record = account_import_discard(account_import_id=pk, user=request.user)
                messages.info(request, f"Import of {record.original_name} discarded; nothing was written.")
                return HttpResponseRedirect(self._url("changelist"))
            record, report = account_import_confirm(
                account_import_id=pk, user=request.user, actor=Actor.staff(request.user)
            )
        except ImportNotPending as error:
            messages.error(request, str(error))
            return HttpResponseRedirect(preview_url)
        except UnreadableFile as error:
            messages.error(request, f"Nothing was written: {error}")
            return HttpResponseRedirect(preview_url)
        if not report.ok:
            messages.error(request, "Nothing was written: the file has invalid rows (see below).")
            return HttpResponseRedirect(preview_url)
        if not (report.created or report.updated):
            messages.info(
                request,
                f"Nothing changed: every account in {record.original_name} is already up to date "
                f"({report.unchanged:,} unchanged).",
            )
            return HttpResponseRedirect(self._url("changelist"))
        messages.success(
            request,
            f"Imported {record.original_name}: {report.created:,} new, {report.updated:,} updated, "
            f"{report.unchanged:,} unchanged.",
        )
        return HttpResponseRedirect(self._url("changelist"))

    # --- Export -------------------------------------------------------------------------------------------

    def _export_changelist(self, request: HttpRequest) -> ChangeList:
        """The changelist the export URL describes (filters and search), without its page of results."""

        class ExportChangeList(self.get_changelist(request)):  # type: ignore[misc]
            def get_results(self, request: HttpRequest) -> None:
                return None  # no count and no page: only the filtered queryset is wanted

            def get_filters_params(self, params: Any = None) -> dict[str, Any]:
                result = super().get_filters_params(params)
                result.pop("_changelist_filters", None)  # Django's "back to the list" marker
                return result

        list_display = self.get_list_display(request)
        return ExportChangeList(
            request,
            self.model,
            list_display,
            self.get_list_display_links(request, list_display),
            self.get_list_filter(request),
            self.date_hierarchy,
            self.get_search_fields(request),
            self.get_list_select_related(request),
            self.list_per_page,
            self.list_max_show_all,
            self.list_editable,
            self,
            self.sortable_by,
            self.search_help_text,
        )

    def get_export_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return self._export_changelist(request).queryset

    def export_action(self, request: HttpRequest) -> HttpResponse:
        """GET: what will be exported (the changelist's filters, in words). POST: the CSV, streamed."""
        if not self.has_export_permission(request):
            raise PermissionDenied
        try:
            changelist = self._export_changelist(request)
        except IncorrectLookupParameters:
            messages.error(request, "Those filters are not valid; pick them again on the list.")
            return HttpResponseRedirect(self._url("changelist"))
        queryset = changelist.queryset
        filters = changelist_filters(request)
        form = AccountExportForm(request.POST if request.method == "POST" else None)
        if request.method == "POST" and form.is_valid():
            stream = accounts_export_stream(
                queryset=queryset,
                actor=Actor.staff(request.user),
                filters=filters,
                bom=form.cleaned_data["bom"],
            )
            response = StreamingHttpResponse(stream, content_type="text/csv; charset=utf-8")
            filename = f"customers-{timezone.now():%Y-%m-%d}.csv"
            response["Content-Disposition"] = content_disposition_header(
                as_attachment=True, filename=filename
            )
            return response
        context = self._context(
            request, "Export customers", form=form, filters=filters, filter_words=filter_words(changelist)
        )
        return TemplateResponse(request, self.export_template_name, context)


@admin.register(AccountImport)
class AccountImportAdmin(LargeTableAdminMixin, admin.ModelAdmin):
    """The record of admin imports: who uploaded what, and what came of it. Read-only."""

    list_display = ["created_at", "original_name", "status", "created_by", "counts"]
    list_filter = ["status"]
    list_select_related = ["created_by"]
    readonly_fields = [f.name for f in AccountImport._meta.fields]

    @admin.display(description="Counts")
    def counts(self, record: AccountImport) -> str:
        report = record.report or {}
        return (
            f"{report.get('created', 0):,} new, {report.get('updated', 0):,} updated, "
            f"{report.get('unchanged', 0):,} unchanged, {report.get('invalid', 0):,} invalid"
        )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
