"""System checks of the gateway settings: stable ids for each misconfiguration."""

from __future__ import annotations

import pytest
from django.core.checks import run_checks

STRIPE = {
    "PAYMENT_GATEWAY": "stripe",
    "STRIPE_SECRET_KEY": "sk_test_abc",
    "STRIPE_WEBHOOK_SECRET": ["whsec_abc"],
    "DEBUG": False,
}


def ids(**overrides: object) -> set[str]:
    from django.test import override_settings

    with override_settings(**overrides):
        return {
            message.id
            for message in run_checks(include_deployment_checks=True)
            if message.id.startswith("dunning.")
        }


def test_a_complete_stripe_configuration_is_clean() -> None:
    assert ids(**STRIPE) == set()


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"STRIPE_SECRET_KEY": ""}, "dunning.E001"),
        ({"STRIPE_WEBHOOK_SECRET": []}, "dunning.E002"),
        ({"STRIPE_WEBHOOK_SECRET": [" "]}, "dunning.E002"),
        ({"PAYMENT_GATEWAY": "simulated"}, "dunning.E003"),
        ({"STRIPE_SECRET_KEY": "sk_live_abc", "DEBUG": True}, "dunning.E004"),
        ({"STRIPE_SECRET_KEY": "rk_live_abc", "DEBUG": True}, "dunning.E004"),
        ({"STRIPE_RETRY_OWNER": "both"}, "dunning.E005"),
        ({"STRIPE_SECRET_KEY": "pk_test_abc"}, "dunning.E006"),
        ({"STRIPE_API_VERSION": "2024-06-20"}, "dunning.W001"),
    ],
)
def test_each_misconfiguration_has_its_id(overrides: dict[str, object], expected: str) -> None:
    assert ids(**{**STRIPE, **overrides}) == {expected}


def test_a_live_key_without_debug_and_the_simulated_gateway_in_debug_are_fine() -> None:
    assert ids(**{**STRIPE, "STRIPE_SECRET_KEY": "sk_live_abc"}) == set()
    assert ids(PAYMENT_GATEWAY="simulated", DEBUG=True, STRIPE_SECRET_KEY="") == set()
