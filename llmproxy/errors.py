"""The gateway's error tree, and how each error looks to an OpenAI client.

    GatewayError                      500 api_error
      InvalidRequest                  400 invalid_request_error
        ModelNotFound                 404 invalid_request_error  code=model_not_found
        PayloadTooLarge               413 invalid_request_error
        HeadersTooLarge               431 invalid_request_error  too many or too large request headers
        RequestTimeout                408 invalid_request_error  the request (head or body) came too slowly
        UnsupportedMediaType          415 invalid_request_error  a write whose body is not JSON
        NotFound                      404 invalid_request_error  (unknown path)
        MethodNotAllowed              405 invalid_request_error
      AuthenticationFailed            401 authentication_error   code=invalid_api_key
      PermissionDenied                403 permission_error
      RateLimited                     429 rate_limit_error       code=rate_limit_exceeded
      QuotaExceeded                   429 insufficient_quota     code=insufficient_quota
      ServiceUnavailable              503 api_error              (draining, not ready)
      ClientDisconnected              499                        the client left before its request was read
      UpstreamError                   502 api_error              a provider failed; retryable by default
        UpstreamAuthError             502                        the gateway's provider key was refused
        UpstreamRateLimited           429 rate_limit_error       keeps the provider's retry-after
        UpstreamUnavailable           503                        5xx, Anthropic 529, Gemini UNAVAILABLE
        UpstreamTimeout               504
        UpstreamConnectionError       502                        refused, reset, DNS
        UpstreamRejected              4xx invalid_request_error  the provider refused the caller's request

Foreign failures are translated at the edge (aiohttp exceptions in providers/base.py, provider
bodies in each adapter's map_error); past that edge everything is a GatewayError.
`retryable` tells the route whether the next candidate may be tried.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson


class GatewayError(Exception):
    status: int = 500
    type: str = "api_error"
    default_code: str | None = None
    retryable: bool = False

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        headers: Mapping[str, str] | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code if code is not None else self.default_code
        self.param = param
        self.headers: dict[str, str] = dict(headers or {})
        if status is not None:
            self.status = status

    def to_dict(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_dict())


class InvalidRequest(GatewayError):
    status = 400
    type = "invalid_request_error"


class ModelNotFound(InvalidRequest):
    status = 404
    default_code = "model_not_found"


class PayloadTooLarge(InvalidRequest):
    status = 413
    default_code = "request_too_large"


class HeadersTooLarge(InvalidRequest):
    status = 431
    default_code = "headers_too_large"


class RequestTimeout(InvalidRequest):
    status = 408
    default_code = "request_timeout"


class UnsupportedMediaType(InvalidRequest):
    status = 415
    default_code = "unsupported_media_type"


class NotFound(InvalidRequest):
    status = 404
    default_code = "not_found"


class MethodNotAllowed(InvalidRequest):
    status = 405
    default_code = "method_not_allowed"


class AuthenticationFailed(GatewayError):
    status = 401
    type = "authentication_error"
    default_code = "invalid_api_key"


class PermissionDenied(GatewayError):
    status = 403
    type = "permission_error"
    default_code = "permission_denied"


class RateLimited(GatewayError):
    status = 429
    type = "rate_limit_error"
    default_code = "rate_limit_exceeded"


class QuotaExceeded(GatewayError):
    status = 429
    type = "insufficient_quota"
    default_code = "insufficient_quota"


class ServiceUnavailable(GatewayError):
    status = 503
    default_code = "service_unavailable"


class ClientDisconnected(GatewayError):
    status = 499
    default_code = "client_disconnected"


class UpstreamError(GatewayError):
    status = 502
    default_code: str | None = "upstream_error"  # UpstreamRejected has none
    retryable = True


class UpstreamAuthError(UpstreamError):
    """Another provider may still answer: a bad key on one must not fail the whole route."""

    default_code = "upstream_auth_error"


class UpstreamRateLimited(UpstreamError):
    status = 429
    type = "rate_limit_error"
    default_code = "rate_limit_exceeded"


class UpstreamUnavailable(UpstreamError):
    status = 503
    default_code = "upstream_unavailable"


class UpstreamTimeout(UpstreamError):
    status = 504
    default_code = "upstream_timeout"


class UpstreamConnectionError(UpstreamError):
    default_code = "upstream_connection_error"


class UpstreamRejected(UpstreamError):
    """The provider refused the request itself (a 4xx other than auth and rate limits): the caller's to fix."""

    status = 400
    type = "invalid_request_error"
    default_code = None
    retryable = False


def from_upstream_status(
    provider: str,
    status: int,
    message: str,
    *,
    retry_after: str | None = None,
    code: str | None = None,
    param: str | None = None,
) -> GatewayError:
    """The gateway error for a provider's HTTP status, shared by every adapter's map_error."""
    if status in (401, 403):
        return UpstreamAuthError(
            f"{provider} refused the gateway's credentials ({status}); "
            f"check the {provider} API key configured in llmproxy"
        )
    if status == 429:
        headers = {"retry-after": retry_after} if retry_after else None
        return UpstreamRateLimited(
            f"{provider} rate limit: {message}", headers=headers, code=code or "rate_limit_exceeded"
        )
    if status == 408:
        return UpstreamTimeout(f"{provider} timed out: {message}")
    if status >= 500:
        return UpstreamUnavailable(f"{provider} is unavailable ({status}): {message}")
    if 400 <= status < 500:
        return UpstreamRejected(
            f"{provider}: {message}",
            status=status if status in (400, 404, 409, 413, 422) else 400,
            code=code,
            param=param,
        )
    return UpstreamError(f"{provider} returned an unexpected status {status}")
