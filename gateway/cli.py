"""The ``gateway`` command."""

import argparse
import asyncio
import contextlib
import secrets
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from pydantic import ValidationError

from gateway import signing


def _serve(args: argparse.Namespace) -> int:
    from gateway.bootstrap import ProcessRole, serve
    from gateway.settings import Settings

    settings = Settings()
    asyncio.run(serve(settings, ProcessRole(args.role)))
    return 0


def _simulate(args: argparse.Namespace) -> int:
    """The 112 simulator; its receiver serves as a partner's too (same signatures, modes,
    records)."""
    from gateway.bootstrap import simulate_until_stopped

    print(f"{args.banner} listening on http://{args.host}:{args.port}{args.path}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):  # one that comes before the handlers
        asyncio.run(simulate_until_stopped(args.host, args.port, args.secret))
    return 0


def _new_secret(args: argparse.Namespace) -> int:
    from gateway.adapters.sealing import new_data_key
    from gateway.bootstrap import new_webhook_secret

    if args.data_key:
        print(new_data_key())
    elif args.env:
        print(f"DEV_INBOUND_SECRET={new_webhook_secret()}")
        print(f"DEV_C112_SECRET={new_webhook_secret()}")
        print(f"DEV_DATA_KEYS={new_data_key()}")
        print(f"GATEWAY_OPS_TOKEN={secrets.token_urlsafe(24)}")
    else:
        print(new_webhook_secret())
    return 0


def _send_report(args: argparse.Namespace) -> int:
    """Sign a report file as Si Lacak Perak would, POST it, print the answer."""
    from gateway.settings import Settings

    settings = Settings()
    secret = args.secret or (
        settings.inbound_secret.get_secret_value() if settings.inbound_secret else None
    )
    if not secret:
        print("no secret: pass --secret or set GATEWAY_INBOUND_SECRET", file=sys.stderr)
        return 2
    body = Path(args.file).read_bytes()
    url = args.url or f"http://127.0.0.1:{settings.http_port}/v1/reports/si-lacak-perak"
    headers = signing.webhook_headers(
        signing.split_secrets(secret)[:1], str(uuid.uuid4()), body, datetime.now(UTC)
    )
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310 - the URL is the operator's
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            print(response.status, response.read().decode())
            return 0
    except urllib.error.HTTPError as exc:
        print(exc.code, exc.read().decode())
        return 1


def _replay(args: argparse.Namespace) -> int:
    """Put parked messages back on their delivery queue (same webhook-id, a new attempt)."""
    from gateway.bootstrap import replay_parked
    from gateway.model import ParkedSelector
    from gateway.settings import Settings

    selector = ParkedSelector(distribution_id=args.id, case_id=args.case, recipient=args.recipient)
    if selector == ParkedSelector() and not args.all:
        print("name --id, --case or --recipient, or pass --all", file=sys.stderr)
        return 2
    replayed = asyncio.run(replay_parked(Settings(), selector))
    for parked in replayed:
        print(parked.distribution_id, parked.recipient, parked.case_id, sep="\t")
    print(f"replayed {len(replayed)}", file=sys.stderr)
    return 0


def _purge(args: argparse.Namespace) -> int:
    """Drop the personal data of cases ended more than GATEWAY_RETENTION_DAYS ago."""
    from gateway.bootstrap import purge_personal_data
    from gateway.settings import Settings

    settings = Settings()
    purged = asyncio.run(purge_personal_data(settings))
    for case_id in purged:
        print(case_id)
    print(
        f"purged the personal data of {len(purged)} case(s) ended over "
        f"{settings.retention_days} days ago",
        file=sys.stderr,
    )
    return 0


def _reseal(args: argparse.Namespace) -> int:
    """Seal every value again under the first data key; exit 1 if any no key opens."""
    from gateway.bootstrap import reseal_personal_data
    from gateway.settings import Settings

    found = asyncio.run(reseal_personal_data(Settings(), write=not args.check))
    for values in found:
        parts = [] if args.check else [f"{values.resealed} resealed"]
        parts += [f"{n} under {kid}" for kid, n in sorted(values.under.items())]
        parts += [f"{n} under {kid}, no key opens" for kid, n in sorted(values.unreadable.items())]
        parts += [f"{values.empty} purged"] if values.empty else []
        parts += [f"{values.plain} not sealed (older than sealing)"] if values.plain else []
        print(f"{values.column}: {'; '.join(parts) or 'empty'}")
    unreadable = sorted({kid for values in found for kid in values.unreadable})
    if unreadable:
        print(
            f"values sealed under {', '.join(unreadable)} are left as they are: add that key "
            "to GATEWAY_DATA_KEYS (after the first) and run this again",
            file=sys.stderr,
        )
        return 1
    in_use = sorted({kid for values in found for kid in values.under})
    print(f"key ids in use: {', '.join(in_use) or 'none'}", file=sys.stderr)
    return 0


def _audit_verify(args: argparse.Namespace) -> int:
    """Walk the audit log's hash chain; exit 1 naming the first row that does not hold."""
    from gateway.bootstrap import verify_audit
    from gateway.settings import Settings

    verdict = asyncio.run(verify_audit(Settings()))
    if verdict.ok:
        print(f"audit log intact: {verdict.count} rows")
        return 0
    print(
        f"audit log broken at seq {verdict.first_bad_seq}: {verdict.problem} "
        f"({verdict.count} rows before it hold)",
        file=sys.stderr,
    )
    return 1


def _export_schemas(args: argparse.Namespace) -> int:
    from contracts.export import write_schemas
    from gateway.adapters.asyncapi import write_asyncapi

    for path in write_schemas(Path(args.out)):
        print(path)
    print(write_asyncapi(Path(args.asyncapi)))
    return 0


# ---- Partner agencies (issue 5) ----


def _partner_access(args: argparse.Namespace) -> int:
    """Print the rabbitmqctl commands of a broker user that can read one partner queue."""
    from gateway.partner_access import partner_access, vhost_of
    from gateway.settings import Settings

    settings = Settings()
    try:
        access = partner_access(
            args.namespace or settings.namespace,
            args.agency,
            password=secrets.token_urlsafe(24),
            vhost=args.vhost or vhost_of(settings.amqp_url.get_secret_value()),
            user=args.user,
        )
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    print(access.script(), end="")
    return 0


def _tokens(args: argparse.Namespace) -> int:
    """Each configured API token's role and fingerprint, the audit log's name for it."""
    from gateway.bootstrap import token_table
    from gateway.settings import Settings

    for role, fingerprint in token_table(Settings()).fingerprints():
        print(f"{role.value}\t{fingerprint}")
    return 0


def _config_table(args: argparse.Namespace) -> int:
    from gateway.settings import settings_table

    print(settings_table(), end="")
    return 0


def _tail(args: argparse.Namespace) -> int:
    from gateway.adapters.tail import tail
    from gateway.settings import Settings

    settings = Settings()
    token = args.token or (settings.ops_token.get_secret_value() if settings.ops_token else "")
    if not token:
        print("no token: pass --token or set GATEWAY_OPS_TOKEN", file=sys.stderr)
        return 2
    url = args.url or f"http://127.0.0.1:{settings.http_port}"
    filters = {
        name: value
        for name in ("q", "case_id", "distribution_id", "recipient", "outcome", "since")
        if (value := getattr(args, name))
    }
    with contextlib.suppress(KeyboardInterrupt):
        return asyncio.run(tail(url, token, filters, limit=args.limit))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gateway",
        description="Tangerang KDRT emergency gateway (SOP 357/2025). "
        "Settings come from GATEWAY_* variables.",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the gateway (HTTP API, relay, delivery workers)")
    serve.add_argument(
        "--role",
        choices=("all", "api", "worker"),
        default="all",
        help="api: the HTTP API; worker: delivery to 112 and partners (HTTP probes and "
        "metrics only); all: both. Any number of each may share the broker and PostgreSQL.",
    )
    serve.set_defaults(func=_serve)

    sim = commands.add_parser("simulate-112", help="run the 112 command-center simulator")
    sim.add_argument("--host", default="127.0.0.1")
    sim.add_argument("--port", type=int, default=8112)
    sim.add_argument("--secret", required=True, help="whsec_ secret the gateway signs with")
    sim.set_defaults(func=_simulate, banner="112 simulator", path="/v1/messages")

    new_secret = commands.add_parser("new-secret", help="print a new whsec_ secret")
    new_secret.add_argument("--env", action="store_true", help="print a development env file")
    new_secret.add_argument(
        "--data-key", action="store_true", help="print a kid:key for GATEWAY_DATA_KEYS instead"
    )
    new_secret.set_defaults(func=_new_secret)

    send = commands.add_parser("send-report", help="sign and POST a Si Lacak Perak report file")
    send.add_argument("file")
    send.add_argument("--url", help="default: this gateway's intake endpoint")
    send.add_argument("--secret", help="default: GATEWAY_INBOUND_SECRET")
    send.set_defaults(func=_send_report)

    replay = commands.add_parser(
        "replay", help="put parked messages back on their delivery queue (same webhook-id)"
    )
    replay.add_argument("--id", help="one distribution id")
    replay.add_argument("--case", help="every parked message of a case")
    replay.add_argument("--recipient", help="every parked message of a recipient (c112...)")
    replay.add_argument("--all", action="store_true", help="every parked message")
    replay.set_defaults(func=_replay)

    purge = commands.add_parser(
        "purge", help="drop personal data of cases ended over GATEWAY_RETENTION_DAYS ago"
    )
    purge.set_defaults(func=_purge)

    reseal = commands.add_parser(
        "reseal",
        help="seal all personal data again under the first key of GATEWAY_DATA_KEYS, "
        "so the others can be dropped",
    )
    reseal.add_argument(
        "--check", action="store_true", help="only count the values under each key id"
    )
    reseal.set_defaults(func=_reseal)

    audit_log = commands.add_parser("audit", help="the hash-chained audit log")
    audit_commands = audit_log.add_subparsers(dest="audit_command", required=True)
    verify = audit_commands.add_parser(
        "verify", help="check every row and the chain; exit 1 naming the first bad seq"
    )
    verify.set_defaults(func=_audit_verify)

    export = commands.add_parser("export-schemas", help="write the contracts' JSON Schemas")
    export.add_argument("--out", default="contracts/schemas")
    export.add_argument("--asyncapi", default="contracts/asyncapi.json")
    export.set_defaults(func=_export_schemas)

    access = commands.add_parser(
        "partner-access",
        help="print the rabbitmqctl commands of a broker user that reads one partner queue",
    )
    access.add_argument("agency", help="the subscription's agency_id")
    access.add_argument("--vhost", help="default: the vhost of GATEWAY_AMQP_URL")
    access.add_argument("--namespace", help="default: GATEWAY_NAMESPACE")
    access.add_argument("--user", help="default: <namespace>-partner-<agency>")
    access.set_defaults(func=_partner_access)

    partner_sim = commands.add_parser(
        "simulate-partner", help="run a partner agency's webhook receiver (drills, tests)"
    )
    partner_sim.add_argument("--host", default="127.0.0.1")
    partner_sim.add_argument("--port", type=int, default=8113)
    partner_sim.add_argument(
        "--secret", required=True, help="the subscription's whsec_ secret (shown at creation)"
    )
    partner_sim.set_defaults(func=_simulate, banner="partner simulator", path="/")

    tokens = commands.add_parser(
        "tokens", help="print each API token's role and fingerprint (how the audit log names it)"
    )
    tokens.set_defaults(func=_tokens)

    table = commands.add_parser("config-table", help="print every setting as a Markdown table")
    table.set_defaults(func=_config_table)

    follow = commands.add_parser("tail", help="follow the delivery log live (ops token)")
    follow.add_argument("--url", help="the gateway (default: this host's GATEWAY_HTTP_PORT)")
    follow.add_argument("--token", help="default: GATEWAY_OPS_TOKEN")
    for name in ("q", "case_id", "distribution_id", "recipient", "outcome", "since"):
        follow.add_argument(f"--{name.replace('_', '-')}", dest=name)
    follow.add_argument("--limit", type=int, help="stop after this many attempts")
    follow.set_defaults(func=_tail)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result: int = args.func(args)
    except ValidationError as exc:
        if exc.title != "Settings":
            raise
        print(settings_errors(exc), file=sys.stderr)
        return 2
    return result


def settings_errors(exc: ValidationError) -> str:
    """What is wrong with the settings, naming each variable; never a value (pydantic's own
    message quotes every setting given, secrets and tokens included)."""
    lines = ["gateway: the configuration is not valid:"]
    for error in exc.errors(include_url=False, include_input=False, include_context=False):
        message = error["msg"].removeprefix("Value error, ")
        variables = ".".join(str(part) for part in error["loc"])
        lines.append(f"  GATEWAY_{variables.upper()}: {message}" if variables else f"  {message}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
