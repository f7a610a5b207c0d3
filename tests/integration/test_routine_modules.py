"""A deployment's own routines, end to end: the modules ``CRONJOB_ROUTINE_MODULES`` names are
imported by the real ``cronjob`` script at start-up, listed, checked when a schedule is made and
run when due (``async def`` and plain ``def`` ones); a module that cannot be imported stops
start-up with one line naming it."""

from __future__ import annotations

import signal
import subprocess
import textwrap
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from tests.support.processes import CRONJOB, CRONJOB_SCRIPT, CronjobProcess, free_port
from tests.support.waiting import PROMPTLY, wait_until

TOKEN = "routines-token"
HEADERS = {"Authorization": f"Bearer {TOKEN}"}

#: A developer's module, as the README tells them to write it.
ACME_JOBS = '''
    import asyncio
    import threading
    import time

    from pydantic import BaseModel, ConfigDict

    from cronjob_adapters.tasks.python import RoutineContext, routine


    class Args(BaseModel):
        model_config = ConfigDict(extra="forbid")
        customer: str
        seconds: float = 0


    @routine("acme.sync_async", Args, description="Syncs a customer with the ERP.")
    async def sync_async(args: Args, context: RoutineContext) -> dict[str, str]:
        await asyncio.sleep(args.seconds)
        return {"customer": args.customer, "key": context.schedule.delivery_key}


    @routine("acme.sync_blocking", Args)
    def sync_blocking(args: Args, context: RoutineContext) -> dict[str, str]:
        time.sleep(args.seconds)  # a blocking client
        return {"customer": args.customer, "thread": threading.current_thread().name}
'''


def _start(tmp_path: Path, **extra: str) -> tuple[CronjobProcess, str]:
    """``cronjob serve`` by its script, in ``tmp_path`` where ``acme_jobs.py`` is."""
    (tmp_path / "acme_jobs.py").write_text(textwrap.dedent(ACME_JOBS), encoding="utf-8")
    port = free_port()
    env = {"CRONJOB_DATA_DIR": str(tmp_path / "var"), "CRONJOB_PORT": str(port), "CRONJOB_API_TOKENS": TOKEN,
           "CRONJOB_ROUTINE_MODULES": "acme_jobs", "CRONJOB_POLL_INTERVAL_SECONDS": "0.5", **extra}
    serve = CronjobProcess("serve", env, tmp_path / "serve.log", program=CRONJOB_SCRIPT, cwd=tmp_path).start()
    base = f"http://127.0.0.1:{port}"
    serve.wait_ready(base)  # the API answers 503 until the store is set up
    return serve, base


def _create(base: str, routine: str, args: dict[str, object], schedule: str | None = None) -> httpx.Response:
    now = datetime.now(UTC).isoformat()
    return httpx.post(f"{base}/v1/schedules", headers=HEADERS, json={
        "task": {"type": "python", "routine": routine, "args": args}, "schedule": schedule or f"once @ {now}"})


def _wait_status(base: str, schedule_id: str, status: str) -> dict[str, object]:
    shown: dict[str, object] = {}

    def reached() -> bool:
        nonlocal shown
        shown = httpx.get(f"{base}/v1/schedules/{schedule_id}", headers=HEADERS).json()
        return shown["status"] == status

    assert wait_until(reached, 15), f"{schedule_id} is {shown.get('status')}, not {status}: {shown}"
    return shown


def test_serve_lists_checks_and_runs_the_routines_of_the_modules_it_imports(tmp_path: Path) -> None:
    serve, base = _start(tmp_path)
    try:
        listed = httpx.get(f"{base}/v1/routines", headers=HEADERS).json()
        assert {"acme.sync_async", "acme.sync_blocking", "cronjob.purge_runs"} <= {r["name"] for r in listed}
        refused = _create(base, "acme.sync_async", {"customer": 7})
        assert refused.status_code == 422 and refused.json()["errors"][0]["field"] == "task.args.customer"
        recurring = _create(base, "acme.sync_async", {"customer": "Zé"}, "every 10 minutes")
        assert recurring.status_code == 201, recurring.text
        blocking = _create(base, "acme.sync_blocking", {"customer": "Ana", "seconds": 1})
        assert blocking.status_code == 201, blocking.text
        shown = _wait_status(base, blocking.json()["id"], "succeeded")
        assert shown["result"] == {"customer": "Ana", "thread": "routine acme.sync_blocking"}
        one_off = _create(base, "acme.sync_async", {"customer": "João"})
        shown = _wait_status(base, one_off.json()["id"], "succeeded")
        result = shown["result"]
        assert isinstance(result, dict) and result["customer"] == "João"
        schedule_id, _, occurrence = result["key"].partition(":")  # the occurrence's idempotency key
        assert schedule_id == one_off.json()["id"]
        assert datetime.fromisoformat(occurrence) == datetime.fromisoformat(str(shown["send_at"]))
        assert serve.stop() == 0
    finally:
        serve.stop(signal.SIGKILL)


def test_a_stop_does_not_wait_for_a_def_routine_that_never_returns(tmp_path: Path) -> None:
    """Its thread cannot be stopped, but it does not keep the process from exiting: the run is
    given back after the shutdown's grace, and the process ends."""
    serve, base = _start(tmp_path, CRONJOB_SHUTDOWN_GRACE_SECONDS="0.5")
    try:
        created = _create(base, "acme.sync_blocking", {"customer": "Ana", "seconds": 3600})
        _wait_status(base, created.json()["id"], "running")
        started = time.monotonic()
        assert serve.stop(timeout=PROMPTLY + 0.5) == 0
        assert time.monotonic() - started < PROMPTLY
    finally:
        serve.stop(signal.SIGKILL)


@pytest.mark.parametrize(("module", "says"), [
    ("no_such_jobs", "cannot import no_such_jobs: no such module (looked in the installed packages, PYTHONPATH and "),
    ("broken_jobs", "cannot import broken_jobs: ValueError: routine name 'acme jobs': use letters, digits and . _ - "
                    "only (1 to 100 of them, not only punctuation), so that GET /v1/routines/{name} reaches it (at "),
    ("failing_jobs", "cannot import failing_jobs: ModuleNotFoundError: No module named 'erp_client' (at "),
    ("acme jobs", "'acme jobs' is not a module name (dotted, as import takes it: acme.jobs)"),
])
def test_a_module_that_cannot_be_imported_stops_start_up_with_one_line_naming_it(
        tmp_path: Path, module: str, says: str) -> None:
    (tmp_path / "broken_jobs.py").write_text(textwrap.dedent('''
        from pydantic import BaseModel
        from cronjob_adapters.tasks.python import routine

        @routine("acme jobs", BaseModel)
        async def jobs(args, context):
            return None
    '''), encoding="utf-8")
    (tmp_path / "failing_jobs.py").write_text("import erp_client  # not installed\n", encoding="utf-8")
    result = subprocess.run([*CRONJOB, "serve"], capture_output=True, text=True, timeout=60, cwd=tmp_path,
                            env={"PATH": "/usr/bin:/bin", "CRONJOB_ROUTINE_MODULES": f"json, {module}"})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"cronjob: invalid setting CRONJOB_ROUTINE_MODULES: {says}"), \
        result.stderr
