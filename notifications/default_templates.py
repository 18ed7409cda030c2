"""The templates shipped with the product, in English. Staff edit them in the admin afterwards.

``install_default_templates`` creates the missing (key, locale) rows and never overwrites a row staff have
edited; the data migration calls it, and so can ``python manage.py sync_message_templates``.

Tone follows the usual dunning sequence: pre-dunning reminders are light and helpful, the first failure
is friendly ("we noticed an issue"), the second is direct about what the customer will lose, the third is
urgent, carries the date and offers help, and the final notice is plain. Every customer email has one
clear link to the payment page and a plain-text part.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from notifications.email_layout import EmailBlocks

DEFAULT_LOCALE = "en"


@dataclass(frozen=True)
class DefaultTemplate:
    key: str
    description: str
    subject: str
    paragraphs: tuple[str, ...]
    cta_label: str = ""
    cta_variable: str = "portal_url"
    closing: str = "Thanks,\nThe {{ product_name }} team"

    @property
    def blocks(self) -> EmailBlocks:
        """The template as the simple editor holds it: staff edit these parts in the admin."""
        return EmailBlocks(
            paragraphs=self.paragraphs,
            button_label=self.cta_label,
            button_url=f"{{{{ {self.cta_variable} }}}}",
            footer=self.closing,
        )

    @property
    def body_text(self) -> str:
        return self.blocks.body_text()

    @property
    def body_html(self) -> str:
        return self.blocks.body_html(lang=DEFAULT_LOCALE)


_GREETING = "Hi {{ contact_name }},"
_HELP = (
    "If something is wrong, or you need another way to pay or a little more time, just reply to this "
    "email. A person on our billing team reads every reply."
)

DEFAULT_TEMPLATES: tuple[DefaultTemplate, ...] = (
    DefaultTemplate(
        key="predunning_expiry_30d",
        description="Pre-dunning: the default card expires in 30 days.",
        subject="Your card ending {{ card_last4 }} expires soon",
        paragraphs=(
            _GREETING,
            "A quick heads-up: the {{ card_brand }} card ending in {{ card_last4 }} that pays for "
            "{{ product_name }} expires at the end of {{ card_expiry }}.",
            "If you already have a new card, adding it now takes about a minute and keeps everything "
            "running without a gap. If your bank updates cards automatically, there may be nothing to do.",
        ),
        cta_label="Update your card",
    ),
    DefaultTemplate(
        key="predunning_expiry_7d",
        description="Pre-dunning: the default card expires in 7 days.",
        subject="Reminder: your card ending {{ card_last4 }} expires in a week",
        paragraphs=(
            _GREETING,
            "The {{ card_brand }} card ending in {{ card_last4 }} on your {{ product_name }} account "
            "expires at the end of {{ card_expiry }}, and we have not received a new one yet.",
            "Your next payment will fail on an expired card. Updating it now avoids any interruption.",
        ),
        cta_label="Update your card",
    ),
    DefaultTemplate(
        key="failure_1",
        description="First failed payment: friendly, 'we noticed an issue'.",
        subject="We noticed an issue with your {{ product_name }} payment",
        paragraphs=(
            _GREETING,
            "We tried to collect {{ amount }} for invoice {{ invoice_number }}{% if plan %} ({{ plan }})"
            "{% endif %}, but the payment did not go through.{% if decline_reason %} {{ decline_reason }}"
            "{% endif %}",
            "This happens: cards expire, banks flag charges. Your account is not affected, and we will "
            "try again automatically over the next few days.",
            "If you would rather sort it out now, you can update your payment method in one click.",
        ),
        cta_label="Update your payment method",
    ),
    DefaultTemplate(
        key="failure_2",
        description="Second failed payment: direct, what they will lose.",
        subject="Action needed: your {{ product_name }} payment of {{ amount }} is still outstanding",
        paragraphs=(
            _GREETING,
            "Our second attempt to collect {{ amount }} for invoice {{ invoice_number }} failed as "
            "well.{% if decline_reason %} {{ decline_reason }}{% endif %}",
            "If the payment does not go through{% if access_affected_on %} by {{ access_affected_on }}"
            "{% endif %}, your account will be limited and your team will lose access to "
            "{% if plan %}the features of your {{ plan }}{% else %}{{ product_name }}{% endif %}.",
            "Updating your card or choosing another payment method takes about a minute.",
        ),
        cta_label="Update your payment method",
    ),
    DefaultTemplate(
        key="failure_3",
        description="Third failed payment: urgent, with the date, and an offer of help.",
        subject="Urgent: your {{ product_name }} access will be limited{% if access_affected_on %} on "
        "{{ access_affected_on }}{% endif %}",
        paragraphs=(
            _GREETING,
            "We have tried several times to collect {{ amount }} for invoice {{ invoice_number }}, "
            "without success.{% if decline_reason %} {{ decline_reason }}{% endif %}",
            "{% if access_affected_on %}On {{ access_affected_on }}{% else %}Very soon{% endif %}, access "
            "to {{ product_name }} will be limited for {% if company %}{{ company }}{% else %}your account"
            "{% endif %}. Updating your payment method now keeps everything as it is.",
            _HELP,
        ),
        cta_label="Update your payment method now",
    ),
    DefaultTemplate(
        key="final_notice",
        description="Final notice before suspension. Never blocked by the contact cap.",
        subject="Final notice: invoice {{ invoice_number }} for {{ amount }}",
        paragraphs=(
            _GREETING,
            "This is our last reminder about invoice {{ invoice_number }} for {{ amount }}, which is "
            "still unpaid.",
            "Unless it is paid{% if access_affected_on %} by {{ access_affected_on }}{% endif %}, your "
            "{{ product_name }} subscription will be suspended. Your data stays safe, and paying restores "
            "access straight away.",
            _HELP,
        ),
        cta_label="Pay invoice {{ invoice_number }}",
    ),
    DefaultTemplate(
        key="recovered",
        description="Recovered: thank you. Never blocked by the contact cap.",
        subject="Thank you: your {{ product_name }} payment went through",
        paragraphs=(
            _GREETING,
            "Thank you: we received {{ amount }} for invoice {{ invoice_number }}. Your account is fully "
            "active and there is nothing else to do.",
            "You can review your payment details at any time.",
        ),
        cta_label="View your billing details",
    ),
    DefaultTemplate(
        key="suspended",
        description="The account has been suspended for non-payment.",
        subject="Your {{ product_name }} account has been suspended",
        paragraphs=(
            _GREETING,
            "Because we could not collect {{ amount }} for invoice {{ invoice_number }}, your "
            "{{ product_name }} account is now suspended.",
            "Your data is safe. As soon as the invoice is paid, access comes back automatically.",
            _HELP,
        ),
        cta_label="Pay and restore access",
    ),
    DefaultTemplate(
        key="winback",
        description="Win-back, after the subscription ended for non-payment.",
        subject="Your {{ product_name }} account is waiting for you",
        paragraphs=(
            _GREETING,
            "Your {{ product_name }} subscription ended because a payment did not go through, not "
            "because you chose to leave. We would be glad to have you back.",
            "Your account is still here. Update your payment method and you can pick up where you left off.",
            _HELP,
        ),
        cta_label="Reactivate your account",
    ),
    DefaultTemplate(
        key="portal_link",
        description="A fresh link to the payment page, when the customer asks for one.",
        subject="Your secure link to update your payment method",
        paragraphs=(
            _GREETING,
            "Here is the link you asked for. It opens a secure page where you can update the payment "
            "method of your {{ product_name }} account, without logging in.",
            "The link works for a limited time. If you did not ask for it, you can ignore this email.",
        ),
        cta_label="Update your payment method",
    ),
    DefaultTemplate(
        key="staff_escalation",
        description="To the staff group: a task that needs a person (escalation, operational alert).",
        subject="[{{ product_name }} billing] {{ task_title }}",
        paragraphs=(
            "A billing task needs attention.",
            "{{ task_title }}",
            "{% if customer_name %}Customer: {{ customer_name }}{% if company %} ({{ company }}){% endif %}\n"
            "{% endif %}{% if invoice_number %}Invoice: {{ invoice_number }}, {{ amount }}{% endif %}",
            "{{ task_details }}",
        ),
        cta_label="Open the task",
        cta_variable="admin_url",
        closing="(Sent by the dunning back office.)",
    ),
)


def install_default_templates(template_model: Any) -> int:
    """Create the shipped templates that are missing. Never overwrites a row. Returns how many it created.

    Takes the model class so that the data migration can pass its historical model.
    """
    existing = set(template_model.objects.filter(locale=DEFAULT_LOCALE).values_list("key", flat=True))
    # Models from before the simple editor (an earlier migration's) have no place for its parts.
    has_editor = any(field.name == "blocks" for field in template_model._meta.get_fields())
    missing = [
        template_model(
            key=template.key,
            locale=DEFAULT_LOCALE,
            description=template.description,
            subject=template.subject,
            body_text=template.body_text,
            body_html=template.body_html,
            **({"editor": "blocks", "blocks": template.blocks.to_dict()} if has_editor else {}),
        )
        for template in DEFAULT_TEMPLATES
        if template.key not in existing
    ]
    template_model.objects.bulk_create(missing)
    return len(missing)
