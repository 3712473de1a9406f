"""Where the tool connects: the .env file chosen (asked in the menu, a flag on the command line), the
environment it names shown before anything else, and the client signed in to it (or to the demo emulator)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from auth import StaticTokenProvider, env_file_uri, find_env_files, load_config, make_token_provider
from dataverse import DEFAULT_SETTINGS, DataverseClient
from errors import ConfigError, UsageError
from ui.console import Console

if TYPE_CHECKING:
    from dataverse_emulator import EmulatorHandle


@dataclass(frozen=True)
class Connection:
    client: DataverseClient
    label: str                                  # "prod.env -> https://contoso.crm.dynamics.com/", for banners
    emulator: EmulatorHandle | None = None      # the demo's emulator, stopped at exit


def choose_env_file(args: argparse.Namespace, console: Console, work_dir: Path, interactive: bool) -> Path:
    """`--env-file`, else the only .env file here; with several, the menu asks (Enter takes the first, as the
    original tool did) and a command without --env-file is a usage error: it never guesses between prod and test."""
    if args.env_file:
        return (work_dir / args.env_file).resolve()
    found = find_env_files(work_dir)
    if not found:
        raise ConfigError(f"No .env file in {work_dir}.",
                          "Copy .env.example to .env and fill in TENANT_ID and ENVIRONMENT_URI, or try --demo.")
    if len(found) == 1:
        return found[0]
    names = [f"{p.name} ({env_file_uri(p)})" for p in found]
    if not interactive:
        raise UsageError(f"There are {len(found)} .env files here: " + ", ".join(names) + ".",
                         "Choose one with --env-file NAME.")
    console.say("Settings files here:", *(f"    {n}: {name}" for n, name in enumerate(names, 1)))

    def pick(answer: str) -> Path:
        if answer.isdigit() and 1 <= int(answer) <= len(found):
            return found[int(answer) - 1]
        raise UsageError(f"'{answer}' is not one of the numbers above.", "Type a number, or Enter for the first.")
    return console.ask(f"Which .env file? (Enter: 1, {names[0]})", pick, "1")


def connect(args: argparse.Namespace, console: Console, work_dir: Path, interactive: bool) -> Connection:
    settings = replace(DEFAULT_SETTINGS, read_workers=min(args.workers, DEFAULT_SETTINGS.read_workers)) \
        if args.workers else DEFAULT_SETTINGS
    if args.demo:
        from ui import demo

        handle = demo.start(work_dir, reset=args.reset)
        console.say(*demo.BANNER)
        client = DataverseClient(handle.url, StaticTokenProvider(demo.DEMO_TOKEN), settings)
        return Connection(client, f"demo org -> {handle.url}", handle)
    config = load_config(choose_env_file(args, console, work_dir, interactive))
    label = f"{config.env_file.name} -> {config.environment_uri}"
    console.say(f"Environment: {label}", f"Signing in ({config.auth_mode})...")
    client = DataverseClient(config.environment_uri, make_token_provider(config, on_message=console.say), settings)
    return Connection(client, label)
