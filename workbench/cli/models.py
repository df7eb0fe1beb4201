"""`workbench models`: list the models, or pull a GGUF from Hugging Face.

Standard library only at module level.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from workbench.cli.common import open_engine, plain


def register(commands: Any) -> None:
    """Add this group's commands, with their options, to `commands` (the `workbench` subparsers)."""
    models = commands.add_parser(
        "models",
        help="list available models, or pull a GGUF from Hugging Face",
        description="List the packaged, local and remote models; `models pull` downloads a GGUF.",
    )
    models.add_argument("--json", action="store_true", help="print JSON")
    models_commands = models.add_subparsers(dest="models_command", metavar="ACTION")
    models_commands.add_parser("list", help="list models (the default)").add_argument(
        "--json", action="store_true", help="print JSON"
    )
    pull = models_commands.add_parser(
        "pull",
        help="download a GGUF from Hugging Face into the home's models/ folder",
        description="Download OWNER/NAME/FILE.gguf (or the 4-bit GGUF of OWNER/NAME) from Hugging Face into "
        "<home>/models/, with a progress bar, resuming a broken download, checked against the repository's "
        "size and sha256. The only command that uses the internet. HF_ENDPOINT overrides the server; HF_TOKEN "
        "is sent for gated repositories.",
    )
    pull.add_argument(
        "spec", metavar="REPO[/FILE]", help="e.g. Qwen/Qwen2.5-1.5B-Instruct-GGUF/qwen2.5-1.5b-instruct-q4_k_m.gguf"
    )


def _byte_bar(done: int, total: int) -> None:
    if not sys.stderr.isatty():
        return
    width = 30
    filled = width * done // total if total else width
    sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done / 1e6:,.0f}/{total / 1e6:,.0f} MB")
    sys.stderr.flush()


def cmd_models_pull(args: argparse.Namespace) -> int:
    """Download a GGUF into <home>/models (no engine: a running server sees it at its next listing)."""
    from workbench.engine.config import resolve_home
    from workbench.engine.errors import InvalidRequest
    from workbench.engine.inference import hub

    if getattr(args, "connect", None):
        raise InvalidRequest(
            "`workbench models pull` downloads into this machine's data folder, not through --connect."
        )
    models_dir = Path(resolve_home(args.home)) / "models"
    announce = lambda remote: print(  # noqa: E731
        plain(f"Pulling {remote.repo}/{remote.path} ({remote.size / 1e6:,.0f} MB) into {models_dir}..."),
        file=sys.stderr,
    )
    try:
        result = hub.pull(args.spec, models_dir, progress=_byte_bar, on_file=announce)
    finally:
        if sys.stderr.isatty():
            sys.stderr.write("\n")
    verb = {"present": "Already present", "resumed": "Resumed and verified", "downloaded": "Downloaded and verified"}
    print(
        plain(
            f"{verb[result.status]}: {result.path} (sha256 {result.sha256[:12]}...). "
            f"Use it with --model {result.path.stem}."
        )
    )
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    if getattr(args, "models_command", None) == "pull":
        return cmd_models_pull(args)
    from workbench.engine.inference.hub import RECOMMENDED_MODELS

    with open_engine(args) as engine:
        models = engine.list_models()
    if args.json:
        print(json.dumps([m.model_dump() for m in models], indent=2))
        return 0
    if not models:
        print("No models found.")
        return 0
    width = max(len(m.id) for m in models)
    for m in models:
        size = f"{m.size_bytes / 1e6:.0f} MB" if m.size_bytes else ""
        mark = "*" if m.is_default else " "
        print(plain(f"{mark} {m.id:<{width}}  {m.provider:<9}  {m.source:<13}  {size:>7}  {m.location}"))
    print("\n* default. Drop .gguf files into ./models or the home's models/ folder to add local models.")
    installed = {m.id.lower() for m in models}
    spec, size, why = RECOMMENDED_MODELS[0]
    if spec.rsplit("/", 1)[-1].removesuffix(".gguf").lower() not in installed:
        print(f"Recommended upgrade for chat and agents ({size}; {why}):\n    workbench models pull {spec}")
    return 0


COMMANDS = {"models": cmd_models}
