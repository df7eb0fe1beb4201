"""`workbench providers` and `workbench keys`: remote model providers, their keys, and the server's API keys.

Standard library only at module level.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from workbench.cli.common import open_engine, plain


def register(commands: Any) -> None:
    """Add this group's commands, with their options, to `commands` (the `workbench` subparsers)."""
    providers = commands.add_parser(
        "providers",
        help="configure remote model providers",
        description="Configure OpenAI-compatible or Anthropic endpoints. Keys go to the OS keyring (`workbench keys`).",
    )
    providers_commands = providers.add_subparsers(dest="providers_command", metavar="ACTION")
    add = providers_commands.add_parser("add", help="add or replace a provider")
    add.add_argument("name", help="short name, used in model ids as NAME:MODEL")
    add.add_argument("--kind", choices=["openai", "anthropic"], required=True, help="wire format")
    add.add_argument("--base-url", required=True, help="e.g. https://api.openai.com/v1 or http://127.0.0.1:11434/v1")
    add.add_argument(
        "--model", dest="models", action="append", default=[], metavar="MODEL", help="a model to list (repeatable)"
    )
    providers_commands.add_parser("list", help="list providers")
    remove = providers_commands.add_parser("remove", help="remove a provider and its key")
    remove.add_argument("name")

    keys = commands.add_parser(
        "keys",
        help="provider keys (OS keyring) and API keys of the local server",
        description="Provider API keys live only in the OS keyring. Server API keys are "
        "shown once at creation and stored hashed.",
    )
    keys_commands = keys.add_subparsers(dest="keys_command", metavar="ACTION")
    create_key = keys_commands.add_parser("create", help="create a server API key (printed once)")
    create_key.add_argument("--name", required=True)
    create_key.add_argument(
        "--scopes",
        default="read:*,write:*,execute:*",
        help="comma-separated ACTION:RESOURCE scopes, e.g. read:*,write:agents,execute:tools "
        "(default read:*,write:*,execute:*; * grants everything)",
    )
    keys_commands.add_parser("list", help="list server API keys (never their secrets)")
    revoke_key = keys_commands.add_parser("revoke", help="revoke a server API key at once")
    revoke_key.add_argument("key_id", metavar="ID")
    set_key = keys_commands.add_parser("set-provider", help="store a provider's API key (prompted, or read from stdin)")
    set_key.add_argument("name")
    del_key = keys_commands.add_parser("delete-provider", help="delete a provider's API key")
    del_key.add_argument("name")


def cmd_providers(args: argparse.Namespace) -> int:
    action = args.providers_command or "list"
    with open_engine(args) as engine:
        if action == "add":
            info = engine.add_provider(args.name, args.kind, args.base_url, args.models)
            hint = (
                ""
                if info.has_key
                else f" Store its key with `workbench keys set-provider {info.name}` if it needs one."
            )
            print(f"Added {info.name} ({info.kind}, {info.base_url}).{hint}")
        elif action == "remove":
            engine.remove_provider(args.name)
            print(f"Removed {args.name}.")
        else:
            providers = engine.list_providers()
            if not providers:
                print("No providers. Add one with `workbench providers add NAME --kind openai --base-url URL`.")
            for p in providers:
                key = "key stored" if p.has_key else "no key"
                print(plain(f"{p.name:<12} {p.kind:<9} {p.base_url}  [{key}]  models: {', '.join(p.models) or '-'}"))
    return 0


def cmd_keys(args: argparse.Namespace) -> int:
    from workbench.engine import secrets
    from workbench.engine.errors import InvalidRequest

    if args.keys_command == "set-provider":
        if sys.stdin.isatty():
            import getpass

            api_key = getpass.getpass(f"API key for {args.name} (input hidden): ")
        else:
            api_key = sys.stdin.readline().strip()
        with open_engine(args) as engine:
            engine.set_provider_key(args.name, api_key)
        print(f"Stored the {args.name} key in the OS keyring.")
        return 0
    if args.keys_command == "delete-provider":
        deleted = secrets.delete_provider_key(args.name)
        print(f"Deleted the {args.name} key." if deleted else f"No key was stored for {args.name}.")
        return 0
    if args.keys_command == "create":
        scopes = [part.strip() for part in args.scopes.split(",") if part.strip()]
        with open_engine(args) as engine:
            info, key = engine.api_keys.create(args.name, scopes)
        print(key)
        print(
            plain(
                f"Created key {info.id} ({info.name}; scopes {', '.join(info.scopes)}). "
                "It is shown only now: store it safely."
            ),
            file=sys.stderr,
        )
        return 0
    if args.keys_command == "list":
        with open_engine(args) as engine:
            keys = engine.api_keys.list()
        if not keys:
            print("No server API keys. Create one with `workbench keys create --name NAME`.")
        for key in keys:
            print(plain(f"{key.id}  {key.name:20} {','.join(key.scopes):30} created {key.created_at:%Y-%m-%d %H:%M}"))
        return 0
    if args.keys_command == "revoke":
        with open_engine(args) as engine:
            info = engine.api_keys.revoke(args.key_id)
        print(plain(f"Revoked key {info.id} ({info.name})."))
        return 0
    raise InvalidRequest("Choose an action: keys create|list|revoke, or keys set-provider|delete-provider NAME.")


COMMANDS = {"providers": cmd_providers, "keys": cmd_keys}
