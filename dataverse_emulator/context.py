"""What an operation handler gets: the store, the options, who is calling, and where the API lives."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .options import EmulatorOptions
from .store import Store
from .wire import ApiRequest


@dataclass
class Context:
    store: Store
    options: EmulatorOptions
    caller_id: str          # systemuserid of the caller
    api_url: str            # e.g. "http://127.0.0.1:8123/api/data/v9.2/"
    clock: Callable[[], float] = field(default=time.time)
    request: ApiRequest | None = None  # the HTTP request an operation runs for (its headers)


# An operation handler (an action or function) takes the context and its parameters (the JSON body of an
# action; for a function the parameters with aliases resolved and JSON-decoded; for a bound operation the
# key "@bound" holds {"entity": ..., "id": ...}) and returns the response body, or None for 204.
Handler = Callable[[Context, dict], "dict | None"]
