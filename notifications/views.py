"""The banner API. Thin: parse, authenticate, call one selector or service, answer JSON.

- ``GET /api/v1/banners/?customer=<external_id>`` with ``Authorization: Bearer <api key>``: the
  customer's active banners. An unknown customer gets the same empty answer as a customer without
  banners, so the API never tells whether a customer exists.
- ``POST /api/v1/banners/token/`` with the API key and ``customer`` (form or JSON): a short-lived token
  for the browser snippet (the product's backend calls it, the browser never sees the API key).
- ``GET /api/v1/banners/embed/?token=<token>``: what the snippet calls from the browser, with CORS for
  ``BANNER_EMBED_ALLOWED_ORIGINS``.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.cache import patch_vary_headers
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from customers.validators import external_id_problem
from notifications import conf
from notifications.selectors import active_banners_for_customer
from notifications.services.banners import api_key_authenticate, banner_token_for, banner_token_read

MAX_TOKEN_TTL = 3600


def _error(message: str, status: int, *, challenge: bool = False) -> JsonResponse:
    response = JsonResponse({"error": message}, status=status)
    response["Cache-Control"] = "no-store"
    if challenge:
        response["WWW-Authenticate"] = 'Bearer realm="banners"'
    return response


def _bearer_key(request: HttpRequest) -> object | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return api_key_authenticate(token=token.strip())


def _banners_payload(external_id: str) -> dict[str, Any]:
    return {
        "customer": external_id,
        "banners": [
            {
                "id": row["id"],
                "message": row["message"],
                "severity": row["severity"],
                "cta_url": row["cta_url"],
                "cta_label": row["cta_label"],
                "updated_at": row["updated_at"].isoformat(),
            }
            for row in active_banners_for_customer(external_id=external_id)
        ],
    }


def _customer_error(value: object, *, where: str) -> JsonResponse | None:
    """A 400 naming what is wrong with the customer's external id, or None when it can be looked up."""
    problem = external_id_problem(value)
    if problem is None:
        return None
    return _error(f"The 'customer' {where} (the customer's external id) {problem}.", 400)


def _ttl(value: object) -> int | str:
    """The token lifetime asked for, in whole seconds (at most ``MAX_TOKEN_TTL``), or why it is refused.

    JSON numbers and form strings are accepted; booleans, fractions, infinities and anything else are not.
    """
    if isinstance(value, bool):
        return "'ttl' must be a whole number of seconds, not true or false."
    whole_string = isinstance(value, str) and re.fullmatch(r"\s*\d{1,9}\s*", value)
    whole_float = isinstance(value, float) and math.isfinite(value) and value.is_integer()
    if whole_string or whole_float:
        value = int(value)  # type: ignore[arg-type]
    if not isinstance(value, int):
        return "'ttl' must be a whole number of seconds."
    if value <= 0:
        return "'ttl' must be positive."
    return min(value, MAX_TOKEN_TTL)


@require_http_methods(["GET", "HEAD"])
def banners(request: HttpRequest) -> HttpResponse:
    if _bearer_key(request) is None:
        return _error("A valid API key is required (Authorization: Bearer <key>).", 401, challenge=True)
    external_id = request.GET.get("customer", "").strip()
    if error := _customer_error(external_id, where="parameter"):
        return error
    response = JsonResponse(_banners_payload(external_id))
    response["Cache-Control"] = f"private, max-age={conf.banner_api_max_age()}"
    patch_vary_headers(response, ["Authorization"])
    return response


@csrf_exempt  # server-to-server, authenticated by the API key, never by a cookie
@require_http_methods(["POST"])
def banner_token(request: HttpRequest) -> HttpResponse:
    if _bearer_key(request) is None:
        return _error("A valid API key is required (Authorization: Bearer <key>).", 401, challenge=True)
    data: dict[str, Any] = dict(request.POST.items())
    if request.content_type == "application/json":
        try:
            data = json.loads(request.body or b"{}")
        except ValueError:  # UnicodeDecodeError included
            return _error("The body is not valid JSON (UTF-8).", 400)
        if not isinstance(data, dict):
            return _error('The JSON body must be an object, e.g. {"customer": "acme-42", "ttl": 900}.', 400)
    external_id = data.get("customer", "")
    if isinstance(external_id, str):
        external_id = external_id.strip()
    if error := _customer_error(external_id, where="field"):
        return error
    ttl = _ttl(data.get("ttl", conf.banner_token_ttl()))
    if isinstance(ttl, str):
        return _error(ttl, 400)
    response = JsonResponse(
        {"token": banner_token_for(external_id=external_id, ttl_seconds=ttl), "expires_in": ttl}
    )
    response["Cache-Control"] = "no-store"
    return response


def _cors(request: HttpRequest, response: HttpResponse) -> HttpResponse:
    origin = request.headers.get("Origin", "")
    if origin and origin in conf.banner_embed_allowed_origins():
        response["Access-Control-Allow-Origin"] = origin
        response["Access-Control-Allow-Methods"] = "GET, OPTIONS"
        response["Access-Control-Max-Age"] = "600"
    patch_vary_headers(response, ["Origin"])
    return response


@require_http_methods(["GET", "HEAD", "OPTIONS"])
def banners_embed(request: HttpRequest) -> HttpResponse:
    if request.method == "OPTIONS":
        return _cors(request, HttpResponse(status=204))
    external_id = banner_token_read(token=request.GET.get("token", ""))
    if external_id is None:
        return _cors(request, _error("The banner token is missing, invalid or expired.", 401))
    if problem := external_id_problem(external_id):
        return _cors(request, _error(f"The banner token's customer id {problem}.", 400))
    response = JsonResponse(_banners_payload(external_id))
    # The token is in the URL, so a shared cache could key on it; keep it private and short.
    response["Cache-Control"] = f"private, max-age={conf.banner_api_max_age()}"
    return _cors(request, response)
