"""The `tdscache` console script: `tdscache demo` (the main job, in demo.py) and the ops commands
stats, inspect, invalidate, hash and warm. Argument parsing, messages and exit codes live here;
the work is done by Cache, Hasher and SyncDatabase.

Exit codes: 0 success; 1 failure (Redis unreachable, bad JSON, unreadable database, a demo check
failed); 2 usage (bad arguments, bad Redis URL, unknown entity type); 3 not found (inspect);
130 interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Callable, Optional

from ._errors import CacheUnavailableError, ConfigError, Error, InputError
from .cache import DEFAULT_REDIS_URL, Cache
from .hashing import Hasher
from .orchestrator import CACHE_TYPES, cache_type_of
from .service import redact_url

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_NOT_FOUND = 3
EXIT_INTERRUPTED = 130


class CommandError(Exception):
    """A failure to report on stderr as `tdscache <command>: error: <message>`."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.exit_code = exit_code


# ---- shared pieces ---------------------------------------------------------------------------------

def _open_cache(args: argparse.Namespace, scheme: str = "legacy") -> Cache:
    """A Cache for --redis-url that has answered a PING."""
    options: dict[str, Any] = {"key_prefix": args.key_prefix} if args.key_prefix else {}
    try:
        cache = Cache(args.redis_url, scheme=scheme, **options)
    except ConfigError as exc:
        raise CommandError(str(exc), EXIT_USAGE) from exc
    try:
        cache.ping()
    except Error as exc:
        raise CommandError(f"Redis at {redact_url(cache.url)} is unreachable: {exc}") from exc
    return cache


def _cache_type(name: str) -> str:
    """The cache's type for a name such as products, product or items. Other names are used as
    written (a service may cache types of its own), with a note in case it is a typo."""
    if name.strip().lower() not in CACHE_TYPES:
        print(f"note: {name!r} is not a known entity type ({', '.join(sorted(set(CACHE_TYPES.values())))}); "
              "using it as written", file=sys.stderr)
    return cache_type_of(name.strip())


def _redis_failure(cache: Cache, exc: Error) -> CommandError:
    if isinstance(exc, CacheUnavailableError):
        return CommandError(f"Redis at {redact_url(cache.url)} failed: {exc}")
    return CommandError(str(exc))


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False, default=str))


# ---- commands ----------------------------------------------------------------------------------------

def cmd_stats(args: argparse.Namespace) -> int:
    cache = _open_cache(args)
    started = time.perf_counter()
    cache.ping()  # the first PING also connected; time a second one for the round trip alone
    ping_ms = (time.perf_counter() - started) * 1000
    config = cache.config()
    report = {
        "redis_url": redact_url(cache.url),
        "reachable": True,
        "ping_ms": round(ping_ms, 3),
        "key_prefix": config.get("key_prefix"),
        "ttl_seconds": config.get("ttl_seconds"),
        "max_age_seconds": config.get("max_age_seconds"),
        "cluster": config.get("cluster"),
        "tls": config.get("tls"),
    }
    if args.count:
        try:
            report["states"] = cache.count_states()
        except Error as exc:
            raise _redis_failure(cache, exc) from exc
    if args.json:
        _print_json(report)
        return EXIT_OK
    width = max(len(k) for k in report)
    for key, value in report.items():
        print(f"{key:<{width}}  {value}")
    return EXIT_OK


def _on_cache_type(args: argparse.Namespace, operation: Callable[[Cache, str], Any]) -> tuple[str, Any]:
    """Runs operation(cache, cache_type) for the TYPE argument; Redis trouble becomes a CommandError."""
    cache = _open_cache(args)
    cache_type = _cache_type(args.type)
    try:
        return cache_type, operation(cache, cache_type)
    except InputError as exc:  # only a stored value can be malformed here
        raise CommandError(f"the cached state of {cache_type} {args.id} is unreadable ({exc}); "
                           "the next check will sync that entity") from exc
    except Error as exc:
        raise _redis_failure(cache, exc) from exc


def cmd_inspect(args: argparse.Namespace) -> int:
    cache_type, state = _on_cache_type(args, lambda cache, t: cache.get_state(t, args.id))
    if state is None:
        print(f"no cached state for {cache_type} {args.id}", file=sys.stderr)
        return EXIT_NOT_FOUND
    _print_json(state)
    return EXIT_OK


def cmd_invalidate(args: argparse.Namespace) -> int:
    cache_type, deleted = _on_cache_type(args, lambda cache, t: cache.invalidate(t, args.id))
    what = f"{cache_type} {args.id}" if args.id is not None else f"every {cache_type}"
    print(f"deleted {deleted} cached state{'s' if deleted != 1 else ''} ({what})")
    return EXIT_OK


def _input_error_text(exc: InputError, data: bytes) -> str:
    if exc.offset is None:
        return f"{exc.message} [{exc.status_name}]"
    offset = exc.offset
    line = data.count(b"\n", 0, offset) + 1
    column = offset - (data.rfind(b"\n", 0, offset) + 1) + 1
    return f"{exc.message} at byte {offset} (line {line}, column {column}) [{exc.status_name}]"


def cmd_hash(args: argparse.Namespace) -> int:
    name = "<stdin>" if args.file == "-" else args.file
    try:
        data = sys.stdin.buffer.read() if args.file == "-" else Path(args.file).read_bytes()
    except OSError as exc:
        raise CommandError(f"cannot read {name}: {exc.strerror or exc}") from exc
    hasher = Hasher(args.scheme)
    try:
        if args.canonical:
            canonical = hasher.canonical(data)
            sys.stdout.flush()
            sys.stdout.buffer.write(canonical)
            # Piped output is the exact bytes that are hashed (`| sha256sum` gives the digest).
            if sys.stdout.isatty():
                sys.stdout.buffer.write(b"\n")
            sys.stdout.buffer.flush()
        else:
            print(hasher.hexdigest(data))
    except InputError as exc:
        raise CommandError(f"{name}: {_input_error_text(exc, data)}") from exc
    return EXIT_OK


def cmd_warm(args: argparse.Namespace) -> int:
    if not args.from_db:
        raise CommandError("warm needs a source: pass --from-db (rows of the sync database)", EXIT_USAGE)
    from .zoho.types import resolve_entity_type

    try:
        entity = resolve_entity_type(args.type)
    except ValueError as exc:
        raise CommandError(str(exc), EXIT_USAGE) from exc
    cache = _open_cache(args, scheme=args.scheme)
    rows = asyncio.run(_read_warm_rows(args.database_url, entity))
    ids = [row.zoho_id for row in rows]
    try:
        digests = cache.hasher.digest_many([row.data for row in rows])
    except InputError:
        ids, digests, rows = _hash_one_by_one(cache.hasher, rows)
    try:
        report = cache.warm(entity.cache_type, ids, digests, [row.last_modified_time for row in rows],
                            [row.local_id for row in rows])
    except Error as exc:
        raise _redis_failure(cache, exc) from exc
    print(f"warmed {report.written} {entity.cache_type} states from {len(rows)} rows of {entity.table}")
    if report.errors:
        raise CommandError(f"{report.errors} states were not written: {report.error}")
    return EXIT_OK


def _hash_one_by_one(hasher: Hasher, rows: list[Any]) -> tuple[list[str], list[bytes], list[Any]]:
    """Skips the rows that cannot be hashed (they get no state, so they sync next time)."""
    kept_ids, kept_digests, kept_rows = [], [], []
    for row in rows:
        try:
            kept_digests.append(hasher.digest(row.data))
        except InputError as exc:
            print(f"note: not warming {row.zoho_id}: {exc}", file=sys.stderr)
            continue
        kept_ids.append(row.zoho_id)
        kept_rows.append(row)
    return kept_ids, kept_digests, kept_rows


async def _read_warm_rows(database_url: Optional[str], entity: Any) -> list[Any]:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    from .zoho.db import SyncDatabase

    try:
        database = SyncDatabase(database_url) if database_url else SyncDatabase.from_env()
    except (ValueError, ImportError) as exc:
        raise CommandError(f"bad database URL: {exc}", EXIT_USAGE) from exc
    where = redact_url(database.url)
    try:
        if database.dialect == "sqlite":
            path = make_url(database.url).database
            # Reading would create an empty file and warm nothing: a wrong path must be an error.
            if path and path != ":memory:" and not Path(path).is_file():
                raise CommandError(f"no SQLite database at {path}")
        return list(await database.rows_for_warm(entity))
    except (SQLAlchemyError, OSError) as exc:
        raise CommandError(f"cannot read {entity.table} from {where}: {exc}") from exc
    finally:
        await database.aclose()


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import DemoOptions, run_demo

    return run_demo(DemoOptions(products=args.products, fraction=args.fraction,
                                redis_url=args.redis_url or os.environ.get("REDIS_URL") or None,
                                keep=args.keep, rate_limit_per_minute=args.rate_limit))


# ---- parsing -------------------------------------------------------------------------------------------

def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _fraction(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be within [0, 1], got {value}")
    return value


def _add_redis_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--redis-url", default=None,
                        help=f"redis://, rediss://, unix:// or redis+cluster:// URL "
                             f"(default: $REDIS_URL, then {DEFAULT_REDIS_URL})")
    parser.add_argument("--key-prefix", default=None, help="prefix of the state keys (default: the library's)")


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="tdscache", description="Skip unchanged records when syncing Zoho into your database.",
        epilog="Exit codes: 0 ok, 1 failure, 2 usage error, 3 not found (inspect), 130 interrupted.")
    parser.add_argument("--version", action="version", version=f"tdscache {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser("demo", help="the main job: Zoho simulator -> cache -> SQLite, three runs")
    demo.add_argument("--products", type=_positive_int, default=1312, help="products the simulator serves")
    demo.add_argument("--fraction", type=_fraction, default=0.05, help="share of products changed before run 3")
    demo.add_argument("--redis-url", default=None,
                      help="use this Redis (under a key prefix of its own) instead of a private redis-server "
                           "(default: $REDIS_URL when set)")
    demo.add_argument("--keep", action="store_true", help="keep the temp dir with the SQLite databases")
    demo.add_argument("--rate-limit", type=int, default=100,
                      help="simulated Zoho API calls per minute (Zoho's limit is 100; 0: unlimited)")
    demo.set_defaults(handler=cmd_demo)

    stats = commands.add_parser("stats", help="is Redis reachable, and how the cache is set up there")
    _add_redis_options(stats)
    stats.add_argument("--json", action="store_true", help="print JSON")
    stats.add_argument("--count", action="store_true",
                       help="also count stored states per entity type (SCAN over every key: slow on a big cache)")
    stats.set_defaults(handler=cmd_stats)

    inspect = commands.add_parser("inspect", help="print the cached state of one entity")
    inspect.add_argument("type", metavar="TYPE", help="entity type: products, customers, invoices, ...")
    inspect.add_argument("id", metavar="ID", help="the Zoho id")
    _add_redis_options(inspect)
    inspect.set_defaults(handler=cmd_inspect)

    invalidate = commands.add_parser("invalidate", help="delete cached states, so those entities sync again")
    invalidate.add_argument("type", metavar="TYPE", help="entity type: products, customers, invoices, ...")
    invalidate.add_argument("id", metavar="ID", nargs="?", default=None, help="one Zoho id (default: every one)")
    _add_redis_options(invalidate)
    invalidate.set_defaults(handler=cmd_invalidate)

    hash_ = commands.add_parser("hash", help="print the digest of a JSON document")
    hash_.add_argument("file", metavar="FILE", help="a JSON file, or - for stdin")
    hash_.add_argument("--scheme", choices=("legacy", "jcs"), default="legacy")
    hash_.add_argument("--canonical", action="store_true", help="print the canonical bytes instead of the digest")
    hash_.set_defaults(handler=cmd_hash)

    warm = commands.add_parser("warm", help="write cached states for rows already in the sync database")
    warm.add_argument("type", metavar="TYPE", help="entity type: products, customers, invoices, ...")
    warm.add_argument("--from-db", action="store_true", help="read the rows from the sync database")
    warm.add_argument("--database-url", default=None,
                      help="sqlite:///path or postgresql://... (default: $DATABASE_URL, then SQLite at "
                           "$TDSCACHE_SQLITE_PATH or ./tdscache_zoho.db)")
    warm.add_argument("--scheme", choices=("legacy", "jcs"), default="legacy")
    _add_redis_options(warm)
    warm.set_defaults(handler=cmd_warm)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version and usage errors: argparse already printed
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    if args.command != "demo":
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except CommandError as exc:
        print(f"tdscache {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"tdscache {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


__all__ = ["main", "build_parser", "CommandError"]
