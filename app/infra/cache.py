"""Redis access. Redis is a cache, never the source of truth: every caller must cope with
it being down, so the helpers here return None / False instead of raising."""
from __future__ import annotations

import logging

import redis

log = logging.getLogger("adaptrec.cache")


class Cache:
    def __init__(self, url: str, prefix: str = "adaptrec:", timeout_s: float = 0.25):
        self.prefix = prefix
        self.client = redis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s,
                                           health_check_interval=30)

    def key(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    def ping(self) -> bool:
        try:
            return bool(self.client.ping())
        except (redis.RedisError, OSError) as exc:
            log.warning("redis unavailable: %s", exc)
            return False

    def close(self) -> None:
        self.client.close()
