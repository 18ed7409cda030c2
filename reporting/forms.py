"""The report filters, from the query string. Bad input is a form error on the page, never a 500."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from customers.currencies import CURRENCY_CODES
from dunning.models import DeclineCategory
from reporting.selectors.choices import FilterChoices
from reporting.selectors.filters import DEFAULT_DAYS, NO_SEGMENT, ReportFilters
from reporting.selectors.retry_timing import DEFAULT_DAYS as RETRY_TIMING_DAYS
from reporting.selectors.retry_timing import RetryTimingFilters

MAX_DAYS = 366 * 10


class DateInput(forms.DateInput):
    input_type = "date"

    def __init__(self) -> None:
        super().__init__(format="%Y-%m-%d")


class ReportFilterForm(forms.Form):
    start = forms.DateField(
        label="Failed from", required=False, widget=DateInput(), input_formats=["%Y-%m-%d"]
    )
    end = forms.DateField(label="to", required=False, widget=DateInput(), input_formats=["%Y-%m-%d"])
    currency = forms.ChoiceField(label="Currency", required=False)
    policy = forms.TypedChoiceField(label="Policy", required=False, coerce=int, empty_value=None)
    version = forms.TypedChoiceField(label="Version", required=False, coerce=int, empty_value=None)
    segment = forms.ChoiceField(label="Segment", required=False)
    decline_category = forms.ChoiceField(
        label="First decline",
        required=False,
        choices=[("", "All categories"), *DeclineCategory.choices],
    )

    def __init__(self, data: Any, *, choices: FilterChoices, today: date) -> None:
        super().__init__(data)
        self.today = today
        currencies = list(choices.currencies)
        wanted = (data or {}).get("currency", "")
        if wanted in CURRENCY_CODES and wanted not in currencies:
            currencies.append(wanted)  # a real currency without cases: an empty report, not an error
        self.fields["currency"].choices = [("", "All currencies"), *((c, c) for c in sorted(currencies))]
        self.fields["policy"].choices = [
            ("", "All policies"),
            *((str(pk), name) for pk, name in choices.policies),
        ]
        self.fields["version"].choices = [
            ("", "All versions"),
            *((str(v.id), v.label) for v in choices.versions),
        ]
        self.versions = {v.id: v for v in choices.versions}
        segments = [("", "All segments")]
        segments += [(NO_SEGMENT if s == "" else s, s or "(no segment)") for s in choices.segments]
        self.fields["segment"].choices = segments
        self.fields["start"].widget.attrs["max"] = today.isoformat()
        self.fields["end"].widget.attrs["max"] = today.isoformat()

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        start, end = data.get("start"), data.get("end")
        if "start" in self.errors or "end" in self.errors:
            return data
        end = end or self.today
        start = start or end - timedelta(days=DEFAULT_DAYS - 1)
        if start > end:
            raise ValidationError("The start date is after the end date.", code="reversed_range")
        if (end - start).days >= MAX_DAYS:
            raise ValidationError(f"Choose at most {MAX_DAYS // 366} years at a time.", code="range_too_long")
        data["start"], data["end"] = start, end
        # The date inputs show the range that applies (the last 90 days by default), not empty boxes.
        shown = self.data.copy()
        shown["start"], shown["end"] = start.isoformat(), end.isoformat()
        self.data = shown
        version = self.versions.get(data.get("version")) if data.get("version") else None
        if version is not None and data.get("policy") not in (None, version.policy_id):
            self.add_error("version", "This version belongs to another policy.")
        return data

    def report_filters(self) -> ReportFilters:
        data = self.cleaned_data
        version_id = data.get("version")
        policy_id = data.get("policy")
        if version_id is not None and policy_id is None:
            policy_id = self.versions[version_id].policy_id
        return ReportFilters(
            start=data["start"],
            end=data["end"],
            currency=data.get("currency") or "",
            policy_id=policy_id,
            version_id=version_id,
            segment=data.get("segment") or "",
            decline_category=data.get("decline_category") or "",
        )


class RetryTimingFilterForm(forms.Form):
    """The retry timing page's filters: when the retries were sent (the last 90 days by default), and in
    which currency."""

    since = forms.DateField(
        label="Retried from", required=False, widget=DateInput(), input_formats=["%Y-%m-%d"]
    )
    until = forms.DateField(label="to", required=False, widget=DateInput(), input_formats=["%Y-%m-%d"])
    currency = forms.ChoiceField(label="Currency", required=False)

    def __init__(self, data: Any, *, currencies: list[str], today: date) -> None:
        super().__init__(data)
        self.today = today
        offered = list(currencies)
        wanted = (data or {}).get("currency", "")
        if wanted in CURRENCY_CODES and wanted not in offered:
            offered.append(wanted)  # a real currency without cases: an empty report, not an error
        self.fields["currency"].choices = [("", "All currencies"), *((c, c) for c in sorted(offered))]
        for name in ("since", "until"):
            self.fields[name].widget.attrs["max"] = today.isoformat()

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if "since" in self.errors or "until" in self.errors:
            return data
        until = data.get("until") or self.today
        since = data.get("since") or until - timedelta(days=RETRY_TIMING_DAYS - 1)
        if since > until:
            raise ValidationError("The start date is after the end date.", code="reversed_range")
        if (until - since).days >= MAX_DAYS:
            raise ValidationError(f"Choose at most {MAX_DAYS // 366} years at a time.", code="range_too_long")
        data["since"], data["until"] = since, until
        shown = self.data.copy()
        shown["since"], shown["until"] = since.isoformat(), until.isoformat()
        self.data = shown
        return data

    def retry_timing_filters(self) -> RetryTimingFilters:
        data = self.cleaned_data
        return RetryTimingFilters(
            since=data["since"], until=data["until"], currency=data.get("currency") or ""
        )
