"""The ``tocsin`` command: serve | worker | token create | keys generate|rotate | schema."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Sequence

from tocsin.errors import ConfigurationError, DatabaseUnavailable
from tocsin.settings import Settings, load_settings
from tocsin.storage.enums import Role
from tocsin.storage.redaction import install_log_redaction


def _configure_logging() -> None:
    install_log_redaction()  # for the whole process: also what uvicorn logs after shutdown
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    # Alembic says at INFO which dialect it found on every start: noise for operators.
    # tocsin.migrate logs one line when a migration actually runs.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    # httpx logs every request's URL at INFO, and destination URLs are secrets (Slack and
    # Discord paths, Telegram bot tokens): these loggers may speak only of warnings and worse.
    for name in ("httpx", "httpcore", "httpx_aiohttp", "aiohttp.client"):
        logging.getLogger(name).setLevel(logging.WARNING)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tocsin", description="Self-hosted notification service.")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="the API, GraphiQL and the delivery worker")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--no-worker", action="store_true", help="serve the API without delivering")
    worker = commands.add_parser("worker", help="delivery workers without the API")
    worker.add_argument("--health-port", type=int, help="serve /healthz, /readyz and /metrics")
    worker.add_argument("--health-host", default="127.0.0.1")
    worker.add_argument(
        "--heartbeat", type=float, default=15.0, help="seconds before a stalled loop is not ready"
    )
    token = commands.add_parser("token", help="API tokens").add_subparsers(
        dest="action", required=True
    )
    create = token.add_parser("create", help="print a new API token")
    create.add_argument("--name", required=True)
    create.add_argument("--role", required=True, choices=[r.value for r in Role])
    keys = commands.add_parser("keys", help="encryption keys").add_subparsers(
        dest="action", required=True
    )
    keys.add_parser("generate", help="print a new encryption key")
    keys.add_parser("rotate", help="re-encrypt every stored secret with the newest key")
    commands.add_parser("schema", help="print the GraphQL SDL")
    return parser


async def _prepare_serve(settings: Settings) -> None:
    """Migrate, check the keys and print the first ADMIN token, before the server starts."""
    from tocsin.services import ensure_first_admin_token, open_services

    async with open_services(settings, http=False) as services:
        token = await ensure_first_admin_token(services)
    if token is not None:
        print(
            "\nTocsin created the first ADMIN API token. It is shown only this once:\n\n"
            f"    {token}\n\nUse it as: Authorization: Bearer <token>\n",
            flush=True,
        )


def _serve(settings: Settings, host: str, port: int, run_worker: bool) -> None:

    import uvicorn
    from uvicorn.config import STARTUP_FAILURE

    from tocsin.app import create_app
    from tocsin.sockets import listen_socket
    from tocsin.storage.outbox_lock import own_sqlite_outbox

    # Bound before anything starts: a busy port stops us before the worker sends anything.
    sock = listen_socket(host, port)
    outbox_lock = own_sqlite_outbox(settings.sqlalchemy_url) if run_worker else None
    asyncio.run(_prepare_serve(settings))
    app = create_app(settings, run_worker=run_worker, outbox_lock=outbox_lock, freeze_heap=True)
    config = uvicorn.Config(app, host=host, port=port, log_level="info", access_log=False)
    server = uvicorn.Server(config)
    # uvicorn shuts down gracefully on SIGTERM (the worker finishes its attempts, hands the
    # rest back), then raises the signal again for the handler it found: this one, so a
    # clean stop exits 0 instead of dying of the signal.
    signal.signal(signal.SIGTERM, lambda signum, frame: None)
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:
        pass
    if not server.started:
        sys.exit(STARTUP_FAILURE)  # as uvicorn.run: the app did not start


async def _run_worker(settings: Settings, args: argparse.Namespace | None = None) -> None:
    """Deliver until SIGTERM or SIGINT, then stop cleanly: no more claims, attempts under
    way finish (within the delivery timeout), the rest is handed back; exit 0."""
    from contextlib import AsyncExitStack

    from tocsin.heap import freeze_startup_heap
    from tocsin.services import open_services
    from tocsin.storage.outbox_lock import own_sqlite_outbox
    from tocsin.worker import Worker
    from tocsin.worker_health import health_app, serve_health

    outbox_lock = own_sqlite_outbox(settings.sqlalchemy_url)
    async with open_services(settings) as services, AsyncExitStack() as stack:
        worker = Worker(services, outbox_lock=outbox_lock)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        if args is not None and args.health_port is not None:
            app = health_app(worker, services.db, heartbeat=args.heartbeat)
            host, port = args.health_host, args.health_port
            await stack.enter_async_context(serve_health(app, host=host, port=port))
        await worker.start()
        freeze_startup_heap()
        logging.getLogger("tocsin.worker").info("worker running")
        await stop.wait()
        logging.getLogger("tocsin.worker").info("stopping: finishing attempts under way")
        await worker.stop()


async def _create_token(settings: Settings, name: str, role: Role) -> str:
    from tocsin.resolvers.tokens import create_token
    from tocsin.services import open_services

    async with open_services(settings, http=False) as services:
        token, _, problems = await create_token(db=services.db, actor="cli", name=name, role=role)
    if token is None:
        raise ConfigurationError(problems[0].message)
    return token


async def _rotate(settings: Settings) -> int:
    from tocsin.services import open_services
    from tocsin.storage.keys import rotate_secrets

    async with open_services(settings, http=False) as services:
        return await rotate_secrets(services.db, services.box)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "schema":
            from tocsin.schema import schema

            print(schema.as_str())
            return 0
        if args.command == "keys" and args.action == "generate":
            from tocsin.storage.secretbox import generate_key

            print(generate_key())
            return 0
        settings = load_settings()
        _configure_logging()
        if args.command == "serve":
            _serve(settings, args.host, args.port, run_worker=not args.no_worker)
        elif args.command == "worker":
            asyncio.run(_run_worker(settings, args))
        elif args.command == "token":
            print(asyncio.run(_create_token(settings, args.name, Role(args.role))))
        elif args.command == "keys":
            count = asyncio.run(_rotate(settings))
            print(
                f"re-encrypted the secrets of {count} channel(s) with the newest key",
                file=sys.stderr,
            )
    except DatabaseUnavailable as exc:
        variable = "TOCSIN_DATABASE_URL" if load_settings().database_url else "TOCSIN_DATA_DIR"
        print(f"tocsin: cannot use the database of {variable}: {exc.reason}", file=sys.stderr)
        return 2
    except ConfigurationError as exc:
        print(f"tocsin: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        if exc.filename is None:
            raise
        # The data dir (database file, key file) cannot be created or written.
        print(f"tocsin: cannot use TOCSIN_DATA_DIR: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
