"""How long a provider asks the gateway to wait: its Retry-After header in either form, OpenAI's
retry-after-ms, or a delay in the error body (Gemini's RetryInfo), always answered as whole seconds
(HTTP's delta-seconds), the form the gateway's own retry-after promises."""

from __future__ import annotations

import datetime
import email.utils
import math
import time
from collections.abc import Mapping


def retry_after(headers: Mapping[str, str], delay_s: float | None = None) -> str | None:
    """The provider's "come back later" as our retry-after: whole seconds, as HTTP's delta-seconds.

    From the headers (`retry-after-ms`, which OpenAI sends, then `Retry-After` as seconds or as an
    HTTP-date), else `delay_s` from the error body (Gemini's RetryInfo); None when nothing says."""
    seconds = None
    ms = headers.get("retry-after-ms")
    if ms and (number := _number(ms)) is not None:
        seconds = number / 1000.0
    if seconds is None:
        value = headers.get("retry-after") or headers.get("Retry-After")
        if value:
            seconds = _number(value)
            if seconds is None:
                seconds = _until(value)
    if seconds is None:
        seconds = delay_s
    if seconds is None or seconds < 0:
        return None
    return str(math.ceil(min(seconds, 86400.0)))


def duration_s(value: object) -> float | None:
    """A protobuf Duration as JSON writes it ("12s", "0.5s", "1.000340012s") in seconds, else None."""
    if isinstance(value, str) and value.endswith("s"):
        return _number(value[:-1])
    return None


def _number(text: str) -> float | None:
    """A finite number, or None (for words, and for the nan and inf a hostile header may send)."""
    try:
        number = float(text.strip())
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _until(http_date: str) -> float | None:
    """Seconds from now until an HTTP-date (`Wed, 21 Oct 2015 07:28:00 GMT`), 0 if it is past."""
    try:
        when = email.utils.parsedate_to_datetime(http_date)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # the obsolete forms without a zone are GMT, as HTTP says
        when = when.replace(tzinfo=datetime.UTC)
    return max(0.0, when.timestamp() - time.time())
