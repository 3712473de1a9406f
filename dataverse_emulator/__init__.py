"""A local Dataverse: a real HTTP server speaking the Web API subset this tool uses, with the real service's rules.

    with start_emulator("empty", limits="2,5,10,52") as dv:
        requests.get(dv.api_url + "WhoAmI", headers={"Authorization": "Bearer t"})

`start_emulator` runs the server on a daemon thread and returns once it listens; `python -m dataverse_emulator`
runs it in the foreground (see `__main__.py`).
"""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path
from types import TracebackType
from typing import Any

from .options import EmulatorOptions, Faults, Limits
from .server import Emulator, EmulatorServer
from .store import Store

try:  # the domain helper's datasets; "empty" and state files work without them
    from .datasets import load_dataset
except ModuleNotFoundError as _exc:  # pragma: no cover - depends on the build stage
    if _exc.name != f"{__package__}.datasets":
        raise
    load_dataset = None

_DEFAULTS: dict[str, Any] = {"seed": 1, "limits": None, "faults": None, "port": 0, "host": "127.0.0.1"}
__all__ = ["EmulatorHandle", "EmulatorOptions", "Faults", "Limits", "build_options", "load_initial_state",
           "start_emulator"]


class EmulatorHandle:
    """A running emulator: its URLs, store and options; `stop()` (or leaving the `with`) shuts it down."""

    def __init__(self, server: EmulatorServer, thread: threading.Thread) -> None:
        self.server = server
        self.thread = thread
        self.app: Emulator = server.app
        self.store: Store = server.app.store
        self.options: EmulatorOptions = server.app.options
        self.url: str = server.url
        self.api_url: str = server.app.api_url
        self.port: int = server.server_address[1]
        self._stopped = False

    def stop(self) -> None:
        """Shut the server down, close its socket, join the thread and save the state file if one is set."""
        if self._stopped:
            return
        self._stopped = True
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)
        if self.options.state_file is not None:
            self.store.save(Path(self.options.state_file))

    def __enter__(self) -> EmulatorHandle:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def build_options(dataset: str | EmulatorOptions = "demo", **kw: Any) -> EmulatorOptions:
    """Options from keyword arguments; `limits` and `faults` may also be given in their command-line spelling."""
    if isinstance(dataset, EmulatorOptions):
        return dataclasses.replace(dataset, **_convert(kw)) if kw else dataset
    return EmulatorOptions(dataset=dataset, **_convert(kw))


def _convert(kw: dict[str, Any]) -> dict[str, Any]:
    out = dict(kw)
    if isinstance(out.get("limits"), str):
        out["limits"] = Limits.parse(out["limits"])
    if isinstance(out.get("faults"), str):
        out["faults"] = Faults.parse(out["faults"])
    if out.get("faults", ...) is None:
        out["faults"] = Faults()
    for key in ("state_file", "tls_cert", "tls_key"):
        if isinstance(out.get(key), str):
            out[key] = Path(out[key])
    return out


def load_initial_state(store: Store, options: EmulatorOptions) -> None:
    """The state file when it exists, else the dataset: empty, a saved store (`*.json`), or a generated one."""
    if options.state_file is not None and Path(options.state_file).exists():
        store.load(Path(options.state_file))
        return
    name = options.dataset
    if load_dataset is not None:
        load_dataset(store, name, options.seed)
    elif name.endswith(".json"):
        store.load(Path(name))
    elif name != "empty":
        raise ValueError(f"dataset {name!r} needs dataverse_emulator.datasets, which is not available")


def start_emulator(dataset: str | EmulatorOptions = "demo", *, seed: int = 1, limits: Limits | str | None = None,
                   faults: Faults | str | None = None, port: int = 0, host: str = "127.0.0.1",
                   **overrides: Any) -> EmulatorHandle:
    """Start a server on a daemon thread and return once it is listening."""
    given = {"seed": seed, "limits": limits, "faults": faults, "port": port, "host": host}
    if isinstance(dataset, EmulatorOptions):  # keep its values unless a keyword says otherwise
        given = {k: v for k, v in given.items() if v != _DEFAULTS[k]}
    options = build_options(dataset, **{**given, **overrides})
    store = Store()
    load_initial_state(store, options)
    server = EmulatorServer((options.host, options.port), options, store)
    server.app.caller_id()  # the demo admin exists before the first request
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                              name=f"dataverse-emulator:{server.server_address[1]}", daemon=True)
    thread.start()
    return EmulatorHandle(server, thread)
