"""One client per distinct LLMConfig per process, so the stages of one pipeline reuse
one started local llama.cpp server (and one HTTP pool) instead of starting their own.

On a Ray worker the engine sets an in-flight share: with W workers each client admits
1/W of its config's `max_in_flight`, so the bound a config sets holds for the cluster.
"""

from __future__ import annotations

import atexit
import threading
from typing import TYPE_CHECKING

from helpsteer.llm.config import LLMConfig

if TYPE_CHECKING:
    from helpsteer.llm.client import LLMClient

_CLIENTS: dict[str, LLMClient] = {}
_LOCK = threading.Lock()
_SHARE = 1


def set_in_flight_share(workers: int) -> None:
    """This process is one of `workers` sending the same requests' load (a Ray worker)."""
    global _SHARE
    _SHARE = max(1, int(workers))


def share_of(config: LLMConfig, share: int) -> LLMConfig:
    """`config` for one of `share` processes: 1/share of its in-flight bound (at least 1)."""
    if share <= 1:
        return config
    return config.model_copy(update={"max_in_flight": max(1, -(-config.in_flight // share))})


def _shared_config(config: LLMConfig) -> LLMConfig:
    return share_of(config, _SHARE)


def shared_client(config: LLMConfig | dict) -> LLMClient:
    """The process-wide client for `config` (made on first use, closed at exit)."""
    from helpsteer.llm import make_client

    if not isinstance(config, LLMConfig):
        config = LLMConfig.model_validate(config)
    config = _shared_config(config)
    key = config.model_dump_json()
    with _LOCK:
        client = _CLIENTS.get(key)
        if client is None or client._closed:
            client = make_client(config)
            _CLIENTS[key] = client
        return client


def close_shared() -> None:
    """Close every shared client (their servers stop); later calls make new ones."""
    with _LOCK:
        clients = list(_CLIENTS.values())
        _CLIENTS.clear()
    for client in clients:
        client.close()


atexit.register(close_shared)
