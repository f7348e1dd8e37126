"""``luminaguard serve``: the control plane over one state folder (HTTP, JSON, events)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import logging
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

from luminaguard.errors import UsageError
from luminaguard.hypervisor.registry import DEFAULT
from luminaguard.ui.exit_codes import OK
from luminaguard.ui.state import add_state_option, open_store

PORT = 8420


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``serve`` subcommand."""
    parser = commands.add_parser(
        "serve", help="serve the state folder: runs, approvals and events over HTTP"
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback)")
    parser.add_argument("--port", type=int, default=PORT, help=f"port (default: {PORT})")
    parser.add_argument("--backend", default=DEFAULT, help=f"default backend ({DEFAULT})")
    parser.add_argument(
        "--concurrency", type=int, default=16, metavar="N", help="steps running at once, overall"
    )
    parser.add_argument(
        "--per-run", type=int, default=4, metavar="N", help="steps running at once, per run"
    )
    parser.add_argument(
        "--workspace", default=".", metavar="DIR", help="where submitted paths are read"
    )
    parser.add_argument(
        "--grace", type=float, default=30.0, metavar="S", help="on SIGTERM, time for steps"
    )
    parser.add_argument("--tls-cert", metavar="FILE", help="serve HTTPS with this certificate")
    parser.add_argument("--tls-key", metavar="FILE", help="and this private key")
    parser.add_argument(
        "--insecure", action="store_true", help="allow plain HTTP on a non-loopback address"
    )
    parser.add_argument(
        "--public-url",
        metavar="URL",
        help="the server's address as people reach it, for links in webhook messages"
        " (default: from --host and --port)",
    )
    parser.add_argument(
        "--openapi", action="store_true", help="print the API's OpenAPI document and exit"
    )
    parser.add_argument(
        "--source",
        metavar="PATH|URL",
        help="reconcile this folder or git repository continuously (GitOps)",
    )
    parser.add_argument("--branch", metavar="B", help="the --source repository's branch")
    parser.add_argument(
        "--interval",
        type=float,
        default=60.0,
        metavar="S",
        help="seconds between polls of a git --source (a folder is watched; default 60)",
    )
    parser.add_argument(
        "--prune", action="store_true", help="remove what disappears from the --source"
    )
    add_state_option(parser)
    parser.set_defaults(handler=run)


def check_bind(args: argparse.Namespace) -> None:
    """Refuse plain HTTP beyond loopback (unless --insecure) and half a TLS pair."""
    if bool(args.tls_cert) != bool(args.tls_key):
        raise UsageError("--tls-cert and --tls-key go together")
    if args.tls_cert or args.insecure or _loopback(args.host):
        return
    raise UsageError(
        f"refusing plain HTTP on {args.host}: tokens would cross the network in clear; give"
        " --tls-cert and --tls-key, or --insecure"
    )


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def run(args: argparse.Namespace) -> int:
    """Serve until SIGTERM or SIGINT; then drain and exit 0."""
    if args.openapi:
        from luminaguard.server.app import ENDPOINTS
        from luminaguard.server.openapi import render

        sys.stdout.write(render(ENDPOINTS))
        return OK
    check_bind(args)
    if args.concurrency < 1 or args.per_run < 1:
        raise UsageError("--concurrency and --per-run must be at least 1")
    if args.public_url is not None:
        from luminaguard.config.models.policy import webhook_url

        try:
            webhook_url(args.public_url)
        except ValueError as exc:
            raise UsageError(f"--public-url: {exc}") from exc
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("watchfiles").setLevel(logging.WARNING)
    asyncio.run(_serve(args))
    return OK


async def _serve(args: argparse.Namespace) -> None:
    import uvicorn

    from luminaguard.gitops.source import source_for
    from luminaguard.server.app import build_app
    from luminaguard.server.claim import ServerClaim
    from luminaguard.server.protocol import HeadDeadline
    from luminaguard.server.service import Server

    store = open_store(args)
    try:
        claim = ServerClaim(store.state_dir, _url(args))
    except BaseException:
        store.close()
        raise
    server = Server(
        store,
        backend=args.backend,
        concurrency=args.concurrency,
        per_run=args.per_run,
        workspace=Path(args.workspace),
        public_url=args.public_url or _url(args),
    )
    config = uvicorn.Config(
        build_app(server),
        host=args.host,
        port=args.port,
        lifespan="off",
        log_level="warning",
        ssl_certfile=args.tls_cert,
        ssl_keyfile=args.tls_key,
        timeout_graceful_shutdown=5,
        http=HeadDeadline,
    )
    web = _Uvicorn(config)
    try:
        if args.source is not None:
            source = source_for(args.source, store.state_dir / "sources", args.branch)
            server.follow(source, max(args.interval, 0.1), args.prune)
        await server.start()
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stopping.set)
        serving = asyncio.create_task(web.serve())
        print(f"luminaguard: serving {store.state_dir} on {_url(args)}", file=sys.stderr)
        await asyncio.wait(
            [serving, asyncio.create_task(stopping.wait())], return_when=asyncio.FIRST_COMPLETED
        )
        await server.stop(args.grace)  # the API answers while running steps finish
        web.should_exit = True
        await serving
    finally:
        claim.release()
        store.close()


def _url(args: argparse.Namespace) -> str:
    scheme = "https" if args.tls_cert else "http"
    return f"{scheme}://{args.host}:{args.port}"


class _Uvicorn:
    """uvicorn's server without its own signal handling (ours drains the engine first)."""

    def __init__(self, config: object) -> None:
        import uvicorn

        class Quiet(uvicorn.Server):
            @contextlib.contextmanager
            def capture_signals(self) -> Iterator[None]:
                yield

        assert isinstance(config, uvicorn.Config)
        self.server = Quiet(config)

    async def serve(self) -> None:
        """Serve until ``should_exit``."""
        await self.server.serve()

    @property
    def should_exit(self) -> bool:
        """Whether the server was told to stop."""
        return bool(self.server.should_exit)

    @should_exit.setter
    def should_exit(self, value: bool) -> None:
        self.server.should_exit = value
