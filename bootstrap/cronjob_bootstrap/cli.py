"""The ``cronjob`` command: ``serve`` (API + scheduler), ``api``, ``scheduler``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys
import tempfile
from typing import NoReturn

from pydantic import ValidationError as SettingsError

import cronjob
from cronjob.ports.repository import StoreRefused
from cronjob_adapters.observability.logs import configure_logging
from cronjob_bootstrap.container import (
    RUNNABLE_TASK_TYPES,
    EngineUnavailable,
    build_container,
    engine_class,
    unknown_limited_types,
)
from cronjob_bootstrap.routine_modules import RoutineModuleError, import_routine_modules
from cronjob_bootstrap.runtime import run
from cronjob_bootstrap.settings import SettingFileError, Settings, unknown_variables
from cronjob_bootstrap.tokens import TOKEN_FILE, ensure_local_token


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cronjob", description="Runs time-based work, on time, once.")
    parser.add_argument("--version", action="version", version=f"cronjob {cronjob.__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="API and scheduler in one process (what `make run` starts)")
    sub.add_parser("api", help="the HTTP API only")
    sub.add_parser("scheduler", help="the scheduler only")
    return parser


def load_settings() -> Settings:
    """Settings from the environment; a bad one exits with one line naming it."""
    try:
        return Settings()
    except SettingFileError as exc:
        invalid_setting(exc.name, exc.reason)
    except SettingsError as exc:
        first = exc.errors()[0]
        name = "CRONJOB_" + "_".join(str(p) for p in first["loc"]).upper()
        if os.environ.get(f"{name}_FILE") and not os.environ.get(name):
            name += "_FILE"  # the value came from that file: the variable to fix
        invalid_setting(name, first["msg"].removeprefix("Value error, "))


def check_data_dir(settings: Settings) -> None:
    """Where the data directory is written (the SQLite store, an API token still to create), it
    must exist or be creatable, and be writable, and so must the SQLite store's files that are
    already there (SQLite would open a read-only file read-only, and every write would then fail
    while the service looked ready), and the store's file must be an SQLite database (else its
    opening would fail with a traceback): otherwise exit with one line naming it. (A read-only
    one that already holds the token does for MongoDB: the token is only read.)"""
    path = settings.data_dir
    if settings.store != "sqlite" and (settings.tokens or (path / TOKEN_FILE).is_file()):
        return
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):  # the directory's real error (EROFS, EACCES), if any
            pass
    except OSError as exc:
        invalid_setting("CRONJOB_DATA_DIR", f"cannot use {path}: {exc.strerror} ({_data_dir_use(settings)})")
    if settings.store != "sqlite":
        return
    store = settings.sqlite_path
    for name in (store, store.with_name(f"{store.name}-wal"), store.with_name(f"{store.name}-shm")):
        try:
            with name.open("r+b"):  # opened for writing, nothing written
                pass
        except FileNotFoundError:
            continue  # created when the store opens
        except OSError as exc:
            invalid_setting("CRONJOB_DATA_DIR", f"cannot write {name}: {exc.strerror}")
    with contextlib.suppress(FileNotFoundError), store.open("rb") as file:
        header = file.read(len(_SQLITE_HEADER))
        if header and header != _SQLITE_HEADER:  # empty: a database SQLite has yet to write
            invalid_setting("CRONJOB_DATA_DIR", f"{store} is not an SQLite database (put a backup in its place,"
                            " or move it away to start with an empty store)")


#: How every SQLite database file begins (https://www.sqlite.org/fileformat.html).
_SQLITE_HEADER = b"SQLite format 3\x00"


def _data_dir_use(settings: Settings) -> str:
    """What the data directory is needed for, and the setting that decides it: a container with a
    read-only root (Kubernetes) needs none once that setting is given."""
    if settings.store == "sqlite":
        return "the embedded SQLite store is kept there while CRONJOB_MONGODB_URI is unset"
    return "an API token is created there while CRONJOB_API_TOKENS is unset"


def invalid_setting(name: str, reason: str) -> NoReturn:
    """Exit with code 2 and one line naming the setting ``name`` and what is wrong with it."""
    print(f"cronjob: invalid setting {name}: {reason}", file=sys.stderr)
    raise SystemExit(2)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``cronjob`` script."""
    args = _parser().parse_args(argv)
    settings = load_settings()
    check_data_dir(settings)
    if unknown := unknown_limited_types(settings):
        invalid_setting("CRONJOB_TYPE_LIMITS", f"{', '.join(unknown)}: no such task type (the task types: "
                        f"{', '.join(RUNNABLE_TASK_TYPES)})")
    try:  # before anything serves: the API checks a schedule's routine, the scheduler runs it
        import_routine_modules(settings.routine_module_list)
    except RoutineModuleError as exc:
        invalid_setting("CRONJOB_ROUTINE_MODULES", str(exc))
    api = args.command in ("serve", "api")
    scheduler = args.command in ("serve", "scheduler")
    if scheduler:  # loaded before anything serves, not once the API already answers
        try:
            engine_class(settings.engine)
        except EngineUnavailable as exc:
            invalid_setting("CRONJOB_ENGINE", str(exc))
    configure_logging(settings.log_level, settings.log_format)
    if unknown := unknown_variables(os.environ):  # names only: a value may be a secret
        logging.getLogger("cronjob").warning(
            "ignoring %s: no setting has that name (misspelt? see the README's Configuration)", ", ".join(unknown))
    tokens = settings.tokens
    if not tokens:  # every role serves HTTP (the scheduler its probes and /metrics)
        token, path, created = ensure_local_token(settings.data_dir)
        if token in settings.read_tokens:  # full or read-only: which? (as when listed in both variables)
            invalid_setting("CRONJOB_API_READ_TOKENS", f"a token is the full API token in {path} too: a token "
                            "is either full or read-only, remove it from one of them")
        tokens = [token]
        verb = "created an API token in" if created else "using the API token in"
        route = "/v1/schedules" if api else "/metrics"  # a scheduler serves only its probes and metrics
        base = settings.base_url
        dashboard = f"\n  dashboard: {base}/dashboard (enter that token)" if api else ""
        print(f"cronjob: no CRONJOB_API_TOKENS set; {verb} {path}\n"
              f"  curl -H \"Authorization: Bearer $(cat {path})\" {base}{route}{dashboard}",
              file=sys.stderr)
    if settings.whatsapp_missing and scheduler:
        logging.getLogger("cronjob").warning(
            "WhatsApp is not configured (%s): messages will fail with code not_configured",
            ", ".join(settings.whatsapp_missing))
    container = build_container(settings, tokens=tokens)
    try:
        asyncio.run(run(container, settings, api=api, scheduler=scheduler))
    except KeyboardInterrupt:
        pass
    except StoreRefused as exc:  # setting the store up: wrong credentials are no outage to wait out
        invalid_setting("CRONJOB_MONGODB_URI", f"the MongoDB server refused it: {exc}")


if __name__ == "__main__":
    main()
