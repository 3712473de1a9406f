"""The pages' template engine: Jinja2 with autoescape on for every template, and the page's own script.

A page carries one inline script, our static code (never data), and a Content-Security-Policy that allows
exactly that script (by its SHA-256), inline styles and nothing else: no network, no other script. Should a
value ever slip past escaping as markup, the browser still refuses to run it.
"""

from __future__ import annotations

import base64
import hashlib
from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup

TEMPLATES = Path(__file__).resolve().parent / "templates"


@cache
def _environment() -> Environment:
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=True, undefined=StrictUndefined,
                      trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    # `tojson` escapes < > & ' for HTML; compact and unsorted keeps a page of 5,000 merges small
    env.policies["json.dumps_kwargs"] = {"ensure_ascii": False, "separators": (",", ":"), "sort_keys": False}
    return env


def render(template: str, script: str, **context: Any) -> str:
    """Render `template` with the static script `script` (a file in templates/, after common.js) inlined and
    allowed by the page's policy. Everything in `context` is escaped where the template shows it."""
    code = "".join((TEMPLATES / name).read_text(encoding="utf-8") for name in ("common.js", script))
    if "</script" in code.lower() or "<!--" in code:
        raise ValueError(f"{script} would end its script element early")  # (our own file: a bug, caught by tests)
    digest = base64.b64encode(hashlib.sha256(code.encode("utf-8")).digest()).decode("ascii")
    policy = (f"default-src 'none'; script-src 'sha256-{digest}'; style-src 'unsafe-inline'; img-src data:; "
              "base-uri 'none'; form-action 'none'")
    # Markup: the script is this package's own file, read as it is and hashed for the policy, never data
    return _environment().get_template(template).render(script=Markup(code), policy=policy, **context)
