"""The one rate limiter of Pinhole: pages, the API and sign-in count here.

Each (scope, who) has a window of `rate.seconds` that starts with its first use; within it at most
`rate.count` uses pass, and a refused caller is told how long until the window ends. The counters live
where every web process sees them and nothing else pushes them out: Redis when PINHOLE_CACHE_URL is
set (one MULTI/EXEC per use), else the database (an UPDATE ... count + 1 inside a transaction, so two
processes never lose an increment). A limit of 30 therefore allows exactly 30, however many processes
or threads answer.

    wait = hit("share-predict", ip, Rate(20, 60))   # None: go ahead; else seconds to wait
"""

from __future__ import annotations

import random
from datetime import timedelta
from functools import lru_cache

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from webui.lib.rates import Rate
from webui.ratelimit.models import Counter

# Expired database counters are swept on about one use in this many.
SWEEP_EVERY = 200


def _key(scope: str, who: str, rate: Rate) -> str:
    return f"pinhole:rate:{scope}:{rate.seconds}:{who}"[:255]


@lru_cache(maxsize=1)
def _redis(url: str):
    import redis

    return redis.Redis.from_url(url)


def _store_url() -> str:
    return getattr(settings, "PINHOLE_CACHE_URL", "") or ""


def _count(key: str, seconds: int) -> tuple[int, float]:
    """Count one use of `key`; returns (uses in its window so far, seconds until the window ends)."""
    url = _store_url()
    if url:
        pipe = _redis(url).pipeline(transaction=True)
        pipe.set(key, 0, ex=seconds, nx=True)  # a new window, if none is open
        pipe.incr(key)
        pipe.ttl(key)
        _, count, ttl = pipe.execute()
        return int(count), float(max(ttl, 0))
    now = timezone.now()
    ends = now + timedelta(seconds=seconds)
    with transaction.atomic():
        # Count in the open window; else restart an expired one; else open the first. The restart is
        # conditioned on the window having expired: otherwise a use that found no open window a moment
        # ago could reset one that another process has just opened and counted in.
        counted = Counter.objects.filter(key=key, expires_at__gt=now).update(count=F("count") + 1)
        restarted = counted or Counter.objects.filter(key=key, expires_at__lte=now).update(
            count=1, expires_at=ends
        )
        if not restarted:
            try:
                with transaction.atomic():
                    Counter.objects.create(key=key, count=1, expires_at=ends)
            except IntegrityError:  # another process opened (or restarted) it meanwhile
                Counter.objects.filter(key=key).update(count=F("count") + 1)
        count, expires_at = Counter.objects.filter(key=key).values_list("count", "expires_at").get()
    if random.randrange(SWEEP_EVERY) == 0:
        Counter.objects.filter(expires_at__lt=now).delete()
    return count, (expires_at - now).total_seconds()


def _peek(key: str) -> tuple[int, float]:
    url = _store_url()
    if url:
        client = _redis(url)
        value, ttl = client.get(key), client.ttl(key)
        return int(value or 0), float(max(ttl, 0))
    now = timezone.now()
    row = Counter.objects.filter(key=key, expires_at__gt=now).values_list("count", "expires_at").first()
    return (0, 0.0) if row is None else (row[0], (row[1] - now).total_seconds())


def _seconds(left: float) -> int:
    return max(1, int(left) + 1)


def hit(scope: str, who: str, rate: Rate) -> int | None:
    """Count one use by `who`; seconds to wait when that went past the rate, else None."""
    count, left = _count(_key(scope, who, rate), rate.seconds)
    return _seconds(left) if count > rate.count else None


def over(scope: str, who: str, rate: Rate) -> int | None:
    """Seconds to wait when `who` has used up the rate in this window, else None (counts nothing)."""
    count, left = _peek(_key(scope, who, rate))
    return _seconds(left) if count >= rate.count else None


def refund(scope: str, who: str, rate: Rate) -> None:
    """Give back one use counted by `hit` that turned out not to count (a share token that was right).

    Counting first and refunding after keeps a limit exact under concurrency: a check before the
    work and a count after it let every request that arrives meanwhile through.
    """
    key = _key(scope, who, rate)
    url = _store_url()
    if url:
        client = _redis(url)
        if client.exists(key):
            client.decr(key)
    else:
        Counter.objects.filter(key=key, expires_at__gt=timezone.now(), count__gt=0).update(
            count=F("count") - 1
        )


def clear(scope: str, who: str, rate: Rate) -> None:
    """Forget `who`'s uses (a right password after some wrong ones)."""
    key = _key(scope, who, rate)
    url = _store_url()
    if url:
        _redis(url).delete(key)
    else:
        Counter.objects.filter(key=key).delete()


def client_ip(request) -> str:
    """REMOTE_ADDR only: X-Forwarded-For is whatever the client wants it to be unless a proxy we trust
    rewrites it, and that proxy should then set REMOTE_ADDR (gunicorn --forwarded-allow-ips)."""
    return request.META.get("REMOTE_ADDR") or "unknown"
