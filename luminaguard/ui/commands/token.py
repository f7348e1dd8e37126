"""``token create NAME --role ROLE``, ``token list``, ``token revoke NAME``: the server's tokens."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from luminaguard.errors import UsageError
from luminaguard.server.tokens import Role, TokenFile, check_name
from luminaguard.ui.exit_codes import OK
from luminaguard.ui.state import add_state_option


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``token`` subcommand."""
    parser = commands.add_parser(
        "token", help="create, list or revoke the bearer tokens of `luminaguard serve`"
    )
    actions = parser.add_subparsers(dest="token_action", required=True, metavar="ACTION")
    create = actions.add_parser("create", help="make a token for NAME; it is printed once")
    create.add_argument("name", metavar="NAME")
    create.add_argument("--role", required=True, choices=[str(role) for role in Role])
    create.add_argument(
        "--replace", action="store_true", help="replace NAME's token (the old one stops working)"
    )
    add_state_option(create)
    create.set_defaults(handler=create_token)
    listing = actions.add_parser("list", help="the tokens' names, roles and creation times")
    add_state_option(listing)
    listing.set_defaults(handler=list_tokens)
    revoke = actions.add_parser("revoke", help="remove NAME's token; it stops working at once")
    revoke.add_argument("name", metavar="NAME")
    add_state_option(revoke)
    revoke.set_defaults(handler=revoke_token)


def create_token(args: argparse.Namespace) -> int:
    """Print the new token alone on stdout; say on stderr that it is shown only once."""
    check_name(args.name)  # before the state folder is created
    token = TokenFile(Path(args.state)).create(args.name, args.role, replace=args.replace)
    print(token)
    print(
        f"token for {args.name} ({args.role}): shown once, keep it secret;"
        " send it as 'Authorization: Bearer TOKEN'",
        file=sys.stderr,
    )
    return OK


def list_tokens(args: argparse.Namespace) -> int:
    """Print each token's name, role and creation time (never its digest)."""
    infos = TokenFile(Path(args.state)).list()
    if not infos:
        print("no tokens")
    for info in infos:
        created = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(info.created))
        print(f"{info.name:<24} {info.role:<10} {created}")
    return OK


def revoke_token(args: argparse.Namespace) -> int:
    """Remove the token of NAME; exit 1 when there is none."""
    if not TokenFile(Path(args.state)).revoke(args.name):
        raise UsageError(f"no token named {args.name!r}")
    print(f"revoked {args.name}: its token stops working at once, a running server included")
    return OK
