"""The simple dunning settings page: a handful of answers instead of step editing (Chargebee-style).

It previews the timeline the answers make, then writes an ordinary policy through
``dunning.services.simple_policy.policy_save_simple`` (a draft, or published at once).
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import reverse

from customers.actors import Actor
from customers.models import PaymentMethodType
from dunning.models import DunningPolicy
from dunning.services.simple_policy import (
    END_ACTIONS,
    LATEST_RETRY_HOUR,
    MAX_DAYS,
    MAX_RETRIES,
    SIMPLE_EMAILS,
    SimpleSettings,
    policy_save_simple,
    simple_policy_steps,
    simple_settings_of,
)

POLICY_FIELDS = (
    "name",
    "description",
    "priority",
    "match_segment",
    "match_currency",
    "match_payment_method_type",
)


class SimpleSettingsForm(forms.Form):
    name = forms.CharField(max_length=100)
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2, "cols": 60}))
    priority = forms.IntegerField(
        min_value=0,
        initial=100,
        help_text="Lower numbers are tried first. The shipped Default policy has 1000, so it stays the catch-all.",
    )
    match_segment = forms.SlugField(
        required=False, label="Only for the segment", help_text="Blank: every segment."
    )
    match_currency = forms.CharField(
        required=False, max_length=3, label="Only for the currency", help_text="Blank: every currency."
    )
    match_payment_method_type = forms.ChoiceField(
        required=False,
        label="Only for the payment method",
        choices=[("", "Any"), *PaymentMethodType.choices],
    )
    retries = forms.IntegerField(
        min_value=0,
        max_value=MAX_RETRIES,
        initial=3,
        label="Number of retries",
        help_text="Soft declines and processing errors only: a hard decline is never retried on the same card.",
    )
    over_days = forms.IntegerField(
        min_value=1,
        max_value=MAX_DAYS,
        initial=21,
        label="Over how many days",
        help_text="Retries are spread evenly over this period; the end action happens on its last day.",
    )
    retry_hour = forms.IntegerField(
        min_value=0,
        max_value=LATEST_RETRY_HOUR,
        initial=9,
        label="Retry at (hour)",
        help_text="In the customer's time zone. Emails follow an hour later. Timing is fixed: smart timing "
        "(retrying when a payment is most likely to go through) arrives with the smart-retries work.",
    )
    emails = forms.MultipleChoiceField(
        required=False,
        choices=list(SIMPLE_EMAILS.items()),
        widget=forms.CheckboxSelectMultiple,
        initial=list(SIMPLE_EMAILS),
        label="Emails to the customer",
    )
    banners = forms.BooleanField(
        required=False, initial=True, label="Show in-app banners (payment failed, final notice)"
    )
    end_action = forms.ChoiceField(
        required=False,
        choices=list(END_ACTIONS.items()),
        widget=forms.RadioSelect,
        initial="suspend",
        label="At the end",
    )
    escalate = forms.BooleanField(
        required=False, initial=True, label="Tell staff at the end (a task and an email)"
    )
    publish = forms.BooleanField(
        required=False,
        label="Publish now",
        help_text="New cases that match use it at once. Leave unticked to keep a draft you can refine "
        "in the step editor and publish later.",
    )

    def clean_match_currency(self) -> str:
        return self.cleaned_data.get("match_currency", "").strip().upper()

    def settings(self) -> SimpleSettings:
        data = self.cleaned_data
        return SimpleSettings(
            retries=data["retries"],
            over_days=data["over_days"],
            retry_hour=data["retry_hour"],
            emails=frozenset(data["emails"]),
            banners=data["banners"],
            end_action=data["end_action"],
            escalate=data["escalate"],
        )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if not self.errors:
            try:
                self.steps = simple_policy_steps(self.settings())
            except ValidationError as error:
                raise forms.ValidationError(error.messages) from None
        return cleaned


def _initial(policy: DunningPolicy | None) -> dict[str, Any]:
    if policy is None:
        return {}
    settings = simple_settings_of(policy)
    return {
        **{name: getattr(policy, name) for name in POLICY_FIELDS},
        "retries": settings.retries,
        "over_days": settings.over_days,
        "retry_hour": settings.retry_hour,
        "emails": sorted(settings.emails),
        "banners": settings.banners,
        "end_action": settings.end_action,
        "escalate": settings.escalate,
    }


def simple_settings_view(
    model_admin: Any, request: HttpRequest, policy_id: int | None, render_timeline: Any
) -> HttpResponse:
    policy = get_object_or_404(DunningPolicy, pk=policy_id) if policy_id is not None else None
    allowed = (
        model_admin.has_add_permission(request)
        if policy is None
        else model_admin.has_change_permission(request, policy)
    )
    if not allowed:
        raise PermissionDenied
    form = SimpleSettingsForm(request.POST or None, initial=_initial(policy))
    preview = ""
    if request.method == "POST" and form.is_valid():
        preview = render_timeline(form.steps)
        if "save" in request.POST:
            fields = {name: form.cleaned_data[name] for name in POLICY_FIELDS}
            if form.cleaned_data["publish"] and not request.user.has_perm("dunning.publish_dunningpolicy"):
                raise PermissionDenied
            try:
                saved, version = policy_save_simple(
                    settings=form.settings(),
                    actor=Actor.staff(request.user),
                    policy=policy,
                    publish=form.cleaned_data["publish"],
                    **fields,
                )
            except ValidationError as error:
                form.add_error(None, error)
            else:
                done = f"published as {version}" if version else "saved as a draft (not published yet)"
                model_admin.message_user(
                    request,
                    f"{saved.name}: {len(form.steps)} steps {done}. Refine them below if you like.",
                    messages.SUCCESS,
                )
                return HttpResponseRedirect(reverse("admin:dunning_dunningpolicy_change", args=[saved.pk]))
    elif request.method == "GET":
        try:
            preview = render_timeline(
                simple_policy_steps(simple_settings_of(policy) if policy else SimpleSettings())
            )
        except ValidationError:
            preview = ""  # the draft's steps have no simple equivalent: nothing to preview until answered
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.opts,
        "policy": policy,
        "form": form,
        "preview": preview,
        "title": f"Simple settings: {policy.name}" if policy else "New policy from simple settings",
    }
    return TemplateResponse(request, "admin/dunning/dunningpolicy/simple.html", context)
