"""``POST /webhooks/stripe/``: Stripe's webhook endpoint. Thin: verify, store, answer; work happens after
commit (``dunning.services.stripe_sync``)."""

from __future__ import annotations

import logging

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from dunning.gateways.stripe import WebhookSignatureInvalid
from dunning.services.stripe_sync import WebhookPayloadInvalid, stripe_event_receive

logger = logging.getLogger(__name__)


@csrf_exempt  # Stripe signs the body instead; there is no session or cookie here.
@require_POST
def stripe_webhook(request: HttpRequest) -> JsonResponse:
    try:
        stored = stripe_event_receive(
            payload=request.body, signature=request.headers.get("Stripe-Signature", "")
        )
    except WebhookSignatureInvalid as exc:
        logger.warning("Stripe webhook refused: %s", exc)
        return JsonResponse({"error": f"signature verification failed: {exc}"}, status=400)
    except WebhookPayloadInvalid as exc:
        return JsonResponse({"error": f"not a Stripe event: {exc}"}, status=400)
    return JsonResponse({"received": True, "duplicate": stored.duplicate})
