"""Retry policy: which failures are worth another try, and how long to wait first."""

from __future__ import annotations

import email.utils
import random
import time
from dataclasses import dataclass, field

RETRYABLE_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})

# Client errors about this one request (malformed, too long for the context, refused by
# the schema): recorded as failed in the cache. 401/403/404 and the like are about the
# endpoint or the key, would hit every request, and go away once the config is fixed, so
# recording them would make a whole run's requests look failed on resume.
RECORDED_STATUS = frozenset({400, 413, 422})


class TransientError(Exception):
    """A failure that another try may not repeat (429, 5xx, timeout, dropped connection)."""

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class MalformedAnswer(TransientError):
    """A 200 whose body is not a usable answer. Retried like a 5xx; `repeats` (an empty
    text) makes it a permanent failure once the retries run out."""

    def __init__(self, message: str, repeats: bool = False):
        super().__init__(message)
        self.repeats = repeats


class PermanentError(Exception):
    """A failure that would repeat on every try (bad request, auth, unknown model)."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status

    @property
    def recorded(self) -> bool:
        """Whether the cache keeps this failure (see RECORDED_STATUS)."""
        return self.status in RECORDED_STATUS


def is_retryable_status(status: int) -> bool:
    return status in RETRYABLE_STATUS or status >= 500


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    now = time.time() if now is None else now
    return max(0.0, when.timestamp() - now)


@dataclass
class RetryPolicy:
    """Exponential backoff with jitter; a server's Retry-After wins over the formula.

    The wait before try `attempt + 1` (attempt counts from 0) is drawn uniformly from
    [d/2, d] with d = min(max_s, base_s * 2**attempt), so many clients that failed
    together do not come back together. Retry-After is honoured as given, capped at
    `max_retry_after_s` so a misbehaving server cannot park a run for hours.
    """

    max_retries: int = 6
    base_s: float = 0.5
    max_s: float = 30.0
    max_retry_after_s: float = 600.0
    rng: random.Random = field(default_factory=random.Random)

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        if retry_after is not None:
            return min(retry_after, self.max_retry_after_s)
        ceiling = min(self.max_s, self.base_s * (2**attempt))
        return self.rng.uniform(ceiling / 2, ceiling)

    def should_retry(self, attempt: int) -> bool:
        return attempt < self.max_retries
