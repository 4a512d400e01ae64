"""The ``gatehouse`` command line.

Exit codes: 0 success, 1 failure (the model or server failed), 2 usage error
(bad flags, bad configuration). Every failure prints one line on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

import httpx
from pydantic import ValidationError

from gatehouse import __version__
from gatehouse.cli import capacity
from gatehouse.cli import db as db_cli
from gatehouse.cli import eval as eval_cli
from gatehouse.cli import guard as guard_cli
from gatehouse.cli import models as models_cli
from gatehouse.cli import privacy as privacy_cli
from gatehouse.cli import rag as rag_cli
from gatehouse.cli.arguments import positive_int
from gatehouse.core.config import ConfigSource, Settings
from gatehouse.core.errors import ConfigError, GatehouseError, SchemaError
from gatehouse.core.types import ChatCompletionRequest, ChatMessage
from gatehouse.core.validation import validation_error

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="gatehouse", description="LLM gateway and RAG server.")
    _add_global_options(parser, with_defaults=True)
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    serve = commands.add_parser("serve", help="run the HTTP server")
    serve.add_argument(
        "--role",
        choices=["all", "gateway", "rag"],
        help="what this process serves: all (default), gateway (all but the RAG API) "
        "or rag (the RAG API alone, its model calls sent to rag.gateway_url)",
    )
    serve.add_argument("--host", help="bind address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default 8080)")
    serve.add_argument("--workers", type=positive_int, help="worker processes (default 1)")
    serve.add_argument("--log-level", choices=["critical", "error", "warning", "info", "debug"])

    chat = commands.add_parser("chat", help="chat with a model in-process, streamed")
    chat.add_argument("prompt", nargs="?", help="the prompt (default: read stdin)")
    chat.add_argument("--model", default="default", help="model name (default: default)")
    chat.add_argument("--system", help="system prompt")
    chat.add_argument("--temperature", type=float, help="sampling temperature, 0 to 2")
    chat.add_argument("--max-tokens", type=positive_int, help="completion token limit")
    chat.add_argument("--seed", type=int, help="sampling seed, for repeatable output")

    capacity.add_parser(commands)
    db_cli.add_parser(commands)
    guard_cli.add_parser(commands)
    privacy_cli.add_parser(commands)
    rag_cli.add_parsers(commands)
    eval_cli.add_parsers(commands)
    models_cli.add_parser(commands)
    from gatehouse.cli import governance

    governance.add_parsers(commands)
    commands.add_parser("version", help="print the version")
    for command in _subcommands(parser):
        _add_global_options(command, with_defaults=False)
    return parser


def _add_global_options(parser: argparse.ArgumentParser, *, with_defaults: bool) -> None:
    """The options every command takes, before or after its name.

    Each subcommand gets its own copy (``gatehouse serve --config x``), without
    defaults: argparse copies a subcommand's values over the main parser's, and
    a default there would undo ``gatehouse --config x serve``.
    """

    def default(value: object) -> object:
        return value if with_defaults else argparse.SUPPRESS

    parser.add_argument(
        "--config",
        type=Path,
        default=default(os.environ.get("GATEHOUSE_CONFIG")),
        help="YAML config file (default: $GATEHOUSE_CONFIG; none needed for the defaults)",
    )
    parser.add_argument(
        "--data-dir", type=Path, default=default(None), help="where embedded state lives"
    )


def _subcommands(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """Every subcommand parser under ``parser``, nested ones (``keys create``) included."""
    found: list[argparse.ArgumentParser] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for command in dict.fromkeys(action.choices.values()):  # aliases share a parser
                found += [command, *_subcommands(command)]
    return found


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "version":
        print(f"gatehouse {__version__}")
        return EXIT_OK
    if args.command == "capacity":
        return _capacity(args)
    try:
        settings = _settings(args)
        if args.command == "serve":
            from gatehouse.server.runner import serve

            serve(settings, source=_source(args))
            return EXIT_OK
        if args.command == "models":
            return models_cli.run(settings, args)
        if args.command == "db":
            print(db_cli.run(settings, args))
            return EXIT_OK
        if args.command == "chat":
            return _chat(settings, args)
        if args.command == "guard":
            return _guard(settings, args)
        if args.command in ("keys", "spend", "purge"):
            from gatehouse.cli import governance

            try:
                return governance.run(settings, args)
            except governance.UsageError as exc:
                return _fail(str(exc), EXIT_USAGE)
        if args.command == "privacy":
            return privacy_cli.run(settings, args)
        if args.command in ("ingest", "search", "ask", "collections"):
            return rag_cli.run(settings, args)
        if args.command == "eval":
            return eval_cli.run(settings, args)
    except SchemaError as exc:
        return _fail(str(exc), EXIT_FAILURE)
    except ConfigError as exc:
        return _fail(_one_line(str(exc)), EXIT_USAGE)
    except GatehouseError as exc:
        return _fail(exc.message, EXIT_FAILURE)
    except ValidationError as exc:
        return _fail(validation_error(exc).message, EXIT_USAGE)
    except KeyboardInterrupt:
        return 130
    except OSError as exc:  # a file or folder the command needs: name it, no traceback
        return _fail(_os_error(exc), EXIT_FAILURE)
    raise AssertionError(f"unhandled command {args.command}")


def _one_line(message: str) -> str:
    """A message of a heading and indented items (a configuration's errors) as one
    line: ``heading item; item``."""
    heading, *items = message.splitlines()
    return " ".join([heading, "; ".join(item.strip() for item in items)]).strip()


def _os_error(exc: OSError) -> str:
    """``cannot use PATH: REASON`` (or the error itself when it names no file)."""
    if exc.filename is None or exc.strerror is None:
        return str(exc)
    where = str(exc.filename)
    if exc.filename2 is not None:
        where += f" -> {exc.filename2}"
    return f"cannot use {where}: {exc.strerror}"


def _capacity(args: argparse.Namespace) -> int:
    try:
        lines = capacity.run(args)
    except ValueError as exc:
        return _fail(str(exc), EXIT_USAGE)
    except httpx.HTTPError as exc:
        return _fail(f"cannot read {args.url}/admin/deployments: {exc}", EXIT_FAILURE)
    print("\n".join(lines))
    return EXIT_OK


def _guard(settings: Settings, args: argparse.Namespace) -> int:
    try:
        guard_cli.run(settings, args, sys.stdin, sys.stdout)
    except ValueError as exc:
        return _fail(str(exc), EXIT_USAGE)
    except guard_cli.InputError as exc:
        return _fail(str(exc), EXIT_FAILURE)
    return EXIT_OK


def _settings(args: argparse.Namespace) -> Settings:
    return _source(args).load()


def _source(args: argparse.Namespace) -> ConfigSource:
    """The config file, the environment and the flags: read again by a reload."""
    overrides: dict[str, Any] = {"data_dir": args.data_dir}
    for flag in ("role", "host", "port", "workers", "log_level"):
        overrides[f"server.{flag}"] = getattr(args, flag, None)
    return ConfigSource(args.config, overrides)


def _chat(settings: Settings, args: argparse.Namespace) -> int:
    prompt = args.prompt
    if prompt is None:
        if sys.stdin.isatty():
            return _fail("no prompt given: pass one as an argument or on stdin", EXIT_USAGE)
        prompt = sys.stdin.read()
    if not prompt.strip():
        return _fail("the prompt is empty", EXIT_USAGE)
    messages = [ChatMessage(role="user", content=prompt)]
    if args.system:
        messages.insert(0, ChatMessage(role="system", content=args.system))
    try:
        request = ChatCompletionRequest(
            model=args.model,
            messages=messages,
            temperature=args.temperature,
            max_tokens=args.max_tokens,
            seed=args.seed,
            stream=True,
        )
    except ValidationError as exc:
        return _fail(validation_error(exc).message, EXIT_USAGE)
    return asyncio.run(_stream_chat(settings, request))


async def _stream_chat(settings: Settings, request: ChatCompletionRequest) -> int:
    from gatehouse.gateway import build_gateway

    gateway = build_gateway(settings, started_at=int(time.time()))
    async for chunk in await gateway.chat_stream(request):
        for choice in chunk.choices:
            if choice.delta.content:
                sys.stdout.write(choice.delta.content)
                sys.stdout.flush()
    sys.stdout.write("\n")
    return EXIT_OK


def _fail(message: str, code: int) -> int:
    print(f"gatehouse: error: {message}", file=sys.stderr)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
