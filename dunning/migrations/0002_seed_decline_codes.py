"""Seed the decline table: Stripe's card decline codes, Stripe API error codes, ACH return codes.

Categories decide what the engine does: soft and processing are retried, hard stops until the payment
method changes, authentication_required sends the customer to the portal, fraud is never retried and is
flagged for staff. Customer messages never reveal fraud suspicions (Stripe's own advice).
"""

from django.db import migrations

SOFT, HARD, AUTH, FRAUD, PROCESSING = "soft", "hard", "authentication_required", "fraud", "processing"

GENERIC = "Your bank declined the payment without giving a reason."
FUNDS = "Your bank declined the payment because there were not enough funds available."
DETAILS = "The card details we have are no longer valid. Please add your card again."
USE_ANOTHER = "Your bank declined the payment. Please use a different card or payment method."
TEMPORARY = "The payment could not be completed because of a temporary problem. We will try again."
UNSUPPORTED = "This card cannot be used for this payment. Please use a different card."
PIN = "This card needs a PIN and cannot be charged online. Please use a different card."

CARD_CODES = [
    # code, category, customer message, staff description
    ("approve_with_id", SOFT, GENERIC, "The payment could not be authorised; retrying may succeed."),
    ("authentication_required", AUTH, "Your bank needs you to confirm this payment.", "Needs 3D Secure or similar: the customer must authenticate on session."),
    ("call_issuer", SOFT, GENERIC, "Declined for an unknown reason; the customer may need to call their bank."),
    ("card_declined", SOFT, GENERIC, "Stripe API error code for a decline without a decline_code."),
    ("card_not_supported", HARD, UNSUPPORTED, "The card does not support this kind of purchase."),
    ("card_velocity_exceeded", SOFT, FUNDS, "Balance, credit limit or transaction count exceeded."),
    ("currency_not_supported", HARD, UNSUPPORTED, "The card does not support the currency."),
    ("do_not_honor", SOFT, GENERIC, "Issuer declined without a reason; later retries often succeed."),
    ("do_not_try_again", HARD, USE_ANOTHER, "The issuer asks not to retry."),
    ("duplicate_transaction", SOFT, TEMPORARY, "An identical transaction was submitted very recently."),
    ("expired_card", HARD, "The card on file has expired. Please add your new card.", "The card has expired."),
    ("fraudulent", FRAUD, USE_ANOTHER, "Stripe suspects fraud. Do not tell the customer; never retry."),
    ("generic_decline", SOFT, GENERIC, "Declined for an unknown reason."),
    ("incorrect_cvc", HARD, DETAILS, "The CVC is incorrect."),
    ("incorrect_number", HARD, DETAILS, "The card number is incorrect."),
    ("incorrect_pin", HARD, PIN, "Incorrect PIN (card-present)."),
    ("incorrect_zip", HARD, DETAILS, "The postal code is incorrect."),
    ("insufficient_funds", SOFT, FUNDS, "Not enough funds; retries around pay days often succeed."),
    ("invalid_account", HARD, DETAILS, "The card or the account behind it is invalid."),
    ("invalid_amount", HARD, USE_ANOTHER, "The amount is invalid or above what the card allows."),
    ("invalid_cvc", HARD, DETAILS, "The CVC is invalid."),
    ("invalid_expiry_month", HARD, DETAILS, "The expiry month is invalid."),
    ("invalid_expiry_year", HARD, DETAILS, "The expiry year is invalid."),
    ("invalid_number", HARD, DETAILS, "The card number is invalid."),
    ("invalid_pin", HARD, PIN, "Invalid PIN (card-present)."),
    ("issuer_not_available", PROCESSING, TEMPORARY, "The issuer could not be reached; retry soon."),
    ("lost_card", FRAUD, USE_ANOTHER, "Reported lost. Do not tell the customer the specific reason."),
    ("merchant_blacklist", FRAUD, USE_ANOTHER, "Matches a value on your block list."),
    ("new_account_information_available", HARD, DETAILS, "The card or account has new details: ask for an update."),
    ("no_action_taken", SOFT, GENERIC, "Declined for an unknown reason."),
    ("not_permitted", HARD, USE_ANOTHER, "The payment is not permitted."),
    ("offline_pin_required", HARD, PIN, "The card needs a PIN (card-present)."),
    ("online_or_offline_pin_required", HARD, PIN, "The card needs a PIN (card-present)."),
    ("pickup_card", FRAUD, USE_ANOTHER, "The issuer asks to keep the card (possibly lost or stolen)."),
    ("pin_try_exceeded", HARD, PIN, "Too many PIN attempts."),
    ("processing_error", PROCESSING, TEMPORARY, "An error occurred while processing the card; retry soon."),
    ("reenter_transaction", PROCESSING, TEMPORARY, "The issuer could not process it; retry soon."),
    ("restricted_card", HARD, USE_ANOTHER, "The card cannot be used for this payment (possibly reported lost or stolen)."),
    ("revocation_of_all_authorizations", HARD, USE_ANOTHER, "The customer revoked all recurring payments."),
    ("revocation_of_authorization", HARD, USE_ANOTHER, "The customer revoked this recurring payment."),
    ("security_violation", FRAUD, USE_ANOTHER, "The issuer flagged a security violation."),
    ("service_not_allowed", HARD, USE_ANOTHER, "The card does not allow this service."),
    ("stolen_card", FRAUD, USE_ANOTHER, "Reported stolen. Do not tell the customer the specific reason."),
    ("stop_payment_order", HARD, USE_ANOTHER, "The customer asked their bank to stop this payment."),
    ("testmode_decline", HARD, USE_ANOTHER, "A Stripe test card was used in live mode."),
    ("transaction_not_allowed", HARD, USE_ANOTHER, "The card does not allow this transaction."),
    ("try_again_later", SOFT, TEMPORARY, "Declined for now; retry later."),
    ("withdrawal_count_limit_exceeded", SOFT, FUNDS, "The customer exceeded the card's limit."),
    # Stripe API error codes seen when there is no decline_code.
    ("requires_action", AUTH, "Your bank needs you to confirm this payment.", "The PaymentIntent needs customer action (3DS)."),
    ("payment_intent_authentication_failure", AUTH, "Your bank needs you to confirm this payment.", "Authentication failed or was abandoned."),
    ("payment_method_unactivated", HARD, USE_ANOTHER, "The payment method is not activated."),
]

ACH_CODES = [
    ("R01", SOFT, "There were not enough funds in your bank account.", "Insufficient funds: may be re-presented (at most twice)."),
    ("R09", SOFT, "There were not enough funds in your bank account.", "Uncollected funds: may be re-presented."),
    ("R02", HARD, "Your bank account has been closed. Please add a new payment method.", "Account closed: stop."),
    ("R03", HARD, "We could not find your bank account. Please check your details.", "No account / unable to locate: stop."),
    ("R04", HARD, "The bank account number is not valid. Please check your details.", "Invalid account number: stop."),
    ("R05", HARD, USE_ANOTHER, "Unauthorised debit to a consumer account: stop."),
    ("R07", HARD, USE_ANOTHER, "Authorisation revoked by the customer: stop."),
    ("R08", HARD, USE_ANOTHER, "Payment stopped by the customer: stop."),
    ("R10", HARD, USE_ANOTHER, "Customer advises not authorised: stop."),
    ("R16", HARD, "Your bank account is frozen. Please use a different payment method.", "Account frozen: stop."),
    ("R20", HARD, USE_ANOTHER, "Non-transaction account: stop."),
    ("R29", HARD, USE_ANOTHER, "Corporate customer advises not authorised: stop."),
]

INTERNAL_CODES = [
    ("not_charged", PROCESSING, TEMPORARY, "The gateway had no record of an unanswered attempt: nothing was charged."),
    ("gateway_error", PROCESSING, TEMPORARY, "The gateway refused the request (configuration or a missing payment method)."),
]


def seed(apps, schema_editor):
    DeclineCode = apps.get_model("dunning", "DeclineCode")
    rows = [("stripe", *row) for row in CARD_CODES] + [("ach", *row) for row in ACH_CODES]
    rows += [("internal", *row) for row in INTERNAL_CODES]
    DeclineCode.objects.bulk_create(
        [
            DeclineCode(processor=p, code=c, category=cat, customer_message=msg, staff_description=desc)
            for p, c, cat, msg, desc in rows
        ],
        ignore_conflicts=True,
    )


def unseed(apps, schema_editor):
    apps.get_model("dunning", "DeclineCode").objects.filter(is_classified=True).delete()


class Migration(migrations.Migration):
    dependencies = [("dunning", "0001_initial")]
    operations = [migrations.RunPython(seed, unseed)]
