from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import models
from django.forms.models import BaseInlineFormSet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.safestring import mark_safe

from customers.actors import Actor
from customers.validators import available_time_zones
from dunning.admin.policy_simple import simple_settings_view
from dunning.models import DeclineCategory, DunningPolicy, PolicyStep, PolicyVersion, RetryTiming
from dunning.selectors import policy_timeline
from dunning.services.policies import policy_publish, policy_steps_validate

PUBLISH_PERMISSION = "dunning.publish_dunningpolicy"


class PolicyStepForm(forms.ModelForm):
    # One compact multi-select (short names) instead of five checkboxes on every step.
    decline_categories = forms.MultipleChoiceField(
        choices=[(value, value.replace("_", " ")) for value in DeclineCategory.values],
        required=False,
        widget=forms.SelectMultiple(attrs={"size": 5, "class": "step-categories"}),
        label="Only for declines",
        help_text="Only for cases whose last decline is in these categories; none selected = all. "
        "Ctrl- or Cmd-click to pick several.",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Optional in the form (a step list posted without them means fixed timing, no window).
        self.fields["timing"].required = False
        self.fields["window_days"].required = False

    def clean_timing(self) -> str:
        return self.cleaned_data.get("timing") or RetryTiming.FIXED

    def clean_window_days(self) -> int:
        return self.cleaned_data.get("window_days") or 0

    class Meta:
        model = PolicyStep
        fields = [
            "position",
            "day_offset",
            "local_hour",
            "action",
            "template_key",
            "decline_categories",
            "timing",
            "window_days",
        ]


class PolicyStepFormSet(BaseInlineFormSet):
    """Checks the whole list of steps together: order, invoice-ending steps last, the grace period."""

    def clean(self) -> None:
        super().clean()
        if any(self.errors):
            return
        rows = [
            form.cleaned_data
            for form in self.forms
            if form.cleaned_data and not form.cleaned_data.get("DELETE")
        ]
        positions = [row["position"] for row in rows]
        if len(positions) != len(set(positions)):
            raise ValidationError("Two steps have the same position.")
        steps = [
            {
                "day_offset": row["day_offset"],
                "local_hour": row.get("local_hour"),
                "action": row["action"],
                "template_key": row.get("template_key", ""),
                "decline_categories": row.get("decline_categories") or [],
                "timing": row.get("timing") or "fixed",
                "window_days": row.get("window_days") or 0,
            }
            for row in sorted(rows, key=lambda row: row["position"])
        ]
        policy_steps_validate(steps=steps, grace_period_days=self.instance.grace_period_days)


class PolicyStepInline(admin.TabularInline):
    model = PolicyStep
    form = PolicyStepForm
    formset = PolicyStepFormSet
    extra = 0
    ordering = ["position"]
    formfield_overrides = {
        models.PositiveSmallIntegerField: {"widget": forms.NumberInput(attrs={"style": "width:5em"})},
        models.SlugField: {"widget": forms.TextInput(attrs={"size": 18})},
    }


class PolicyVersionInline(admin.TabularInline):
    model = PolicyVersion
    fields = [
        "number",
        "published_at",
        "published_by",
        "max_retries",
        "network_retry_cap",
        "grace_period_days",
    ]
    readonly_fields = fields
    extra = 0
    can_delete = False
    ordering = ["-number"]

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


def render_timeline(steps: list[dict[str, Any]], time_zone: str = "UTC") -> str:
    from django.template.loader import render_to_string

    return render_to_string(
        "admin/dunning/_timeline_strip.html", {"days": policy_timeline(steps=steps, time_zone=time_zone)}
    )


# Smart-retry settings a form may leave out (an older page, a script): the model's defaults then apply.
SMART_POLICY_DEFAULTS = {
    "smart_min_success_percent": 2.0,
    "retry_min_spacing_hours": 20,
    "retry_budget": 0,
    "retry_budget_days": 0,
}


class DunningPolicyForm(forms.ModelForm):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name in SMART_POLICY_DEFAULTS:
            if name in self.fields:
                self.fields[name].required = False

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        for name, default in SMART_POLICY_DEFAULTS.items():
            if name in self.fields and cleaned.get(name) is None:
                cleaned[name] = default
        if cleaned.get("retry_budget") and not cleaned.get("retry_budget_days"):
            self.add_error("retry_budget_days", "A retry budget needs the number of days it covers.")
        return cleaned

    class Meta:
        model = DunningPolicy
        # The admin's fieldsets decide the fields shown; these are the ones this form looks after.
        fields = list(SMART_POLICY_DEFAULTS)


@admin.register(DunningPolicy)
class DunningPolicyAdmin(admin.ModelAdmin):
    form = DunningPolicyForm
    list_display = [
        "name",
        "is_active",
        "priority",
        "matching",
        "latest_version",
        "max_retries",
        "grace_period_days",
    ]
    list_filter = ["is_active"]
    search_fields = ["name", "description"]
    inlines = [PolicyStepInline, PolicyVersionInline]
    readonly_fields = ["timeline_preview"]
    fieldsets = [
        (None, {"fields": ["name", "description", "is_active", "priority"]}),
        (
            "Matching rules (blank matches everything)",
            {
                "fields": [
                    "match_segment",
                    "match_currency",
                    ("match_min_amount_minor", "match_max_amount_minor"),
                    "match_payment_method_type",
                ]
            },
        ),
        ("Caps", {"fields": ["max_retries", "network_retry_cap", "grace_period_days"]}),
        (
            "Smart retries (see the README: the model learns from this installation's own retries)",
            {
                "fields": [
                    "smart_min_success_percent",
                    "retry_min_spacing_hours",
                    ("retry_budget", "retry_budget_days"),
                ]
            },
        ),
        ("Timeline preview (saved draft steps, failure at 15:00 UTC)", {"fields": ["timeline_preview"]}),
    ]
    actions = ["publish_selected"]

    def get_queryset(self, request: HttpRequest) -> Any:
        return super().get_queryset(request).prefetch_related("versions")

    @admin.display(description="Matches")
    def matching(self, policy: DunningPolicy) -> str:
        rules = [
            f"segment={policy.match_segment}" if policy.match_segment else "",
            f"currency={policy.match_currency}" if policy.match_currency else "",
            f"amount≥{policy.match_min_amount_minor}" if policy.match_min_amount_minor is not None else "",
            f"amount≤{policy.match_max_amount_minor}" if policy.match_max_amount_minor is not None else "",
            f"method={policy.match_payment_method_type}" if policy.match_payment_method_type else "",
        ]
        return ", ".join(r for r in rules if r) or "everything"

    @admin.display(description="Published")
    def latest_version(self, policy: DunningPolicy) -> str:
        versions = sorted(policy.versions.all(), key=lambda v: v.number)
        return f"v{versions[-1].number}" if versions else "not published"

    @admin.display(description="Timeline")
    def timeline_preview(self, policy: DunningPolicy) -> str:
        if policy.pk is None:
            return "Save the policy to see its timeline."
        steps = [step.as_frozen() for step in policy.steps.order_by("position")]
        link = reverse("admin:dunning_dunningpolicy_timeline", args=[policy.pk])
        return mark_safe(
            render_timeline(steps) + format_html('<p><a href="{}">Preview in a time zone…</a></p>', link)
        )

    def get_urls(self) -> list[Any]:
        return [
            path(
                "<int:policy_id>/publish/",
                self.admin_site.admin_view(self.publish_view),
                name="dunning_dunningpolicy_publish",
            ),
            path(
                "simple/",
                self.admin_site.admin_view(self.simple_settings_view),
                name="dunning_dunningpolicy_simple_add",
            ),
            path(
                "<int:policy_id>/simple/",
                self.admin_site.admin_view(self.simple_settings_view),
                name="dunning_dunningpolicy_simple",
            ),
            path(
                "<int:policy_id>/timeline/",
                self.admin_site.admin_view(self.timeline_view),
                name="dunning_dunningpolicy_timeline",
            ),
            *super().get_urls(),
        ]

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        extra_context = {
            **(extra_context or {}),
            "publish_url": reverse("admin:dunning_dunningpolicy_publish", args=[object_id]),
            "simple_url": reverse("admin:dunning_dunningpolicy_simple", args=[object_id]),
        }
        return super().change_view(request, object_id, form_url, extra_context)

    def simple_settings_view(self, request: HttpRequest, policy_id: int | None = None) -> HttpResponse:
        return simple_settings_view(self, request, policy_id, render_timeline)

    def publish_view(self, request: HttpRequest, policy_id: int) -> HttpResponse:
        policy = get_object_or_404(DunningPolicy, pk=policy_id)
        if not self.has_publish_permission(request):
            raise PermissionDenied
        steps = [step.as_frozen() for step in policy.steps.order_by("position")]
        if request.method == "POST":
            try:
                version = policy_publish(
                    policy=policy, actor=Actor.staff(request.user), notes=request.POST.get("notes", "")
                )
            except ValidationError as error:
                self.message_user(request, "Not published: " + " ".join(error.messages), messages.ERROR)
            else:
                self.message_user(
                    request,
                    f"Published {version}. New cases use it; open cases keep the version they started with.",
                    messages.SUCCESS,
                )
            return HttpResponseRedirect(reverse("admin:dunning_dunningpolicy_change", args=[policy.pk]))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "policy": policy,
            "timeline": render_timeline(steps),
            "title": f"Publish {policy.name}?",
        }
        return TemplateResponse(request, "admin/dunning/dunningpolicy/publish.html", context)

    def timeline_view(self, request: HttpRequest, policy_id: int) -> HttpResponse:
        policy = get_object_or_404(DunningPolicy, pk=policy_id)
        if not self.has_view_permission(request, policy):
            raise PermissionDenied
        time_zone = request.GET.get("tz", "UTC")
        if time_zone not in available_time_zones():
            self.message_user(request, f"Unknown time zone {time_zone!r}; showing UTC.", messages.WARNING)
            time_zone = "UTC"
        version_number = request.GET.get("version", "")
        version = policy.versions.filter(number=version_number).first() if version_number.isdigit() else None
        steps = version.steps if version else [step.as_frozen() for step in policy.steps.order_by("position")]
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "policy": policy,
            "versions": policy.versions.order_by("-number"),
            "version": version,
            "time_zone": time_zone,
            "timeline": render_timeline(steps, time_zone),
            "title": f"Timeline of {policy.name}",
        }
        return TemplateResponse(request, "admin/dunning/dunningpolicy/timeline.html", context)

    def has_publish_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(PUBLISH_PERMISSION)

    @admin.action(description="Publish the selected policies", permissions=["publish"])
    def publish_selected(self, request: HttpRequest, queryset: Any) -> None:
        for policy in queryset:
            try:
                version = policy_publish(policy=policy, actor=Actor.staff(request.user))
            except ValidationError as error:
                self.message_user(
                    request, f"{policy}: not published: {' '.join(error.messages)}", messages.ERROR
                )
            else:
                self.message_user(request, f"Published {version}.", messages.SUCCESS)
