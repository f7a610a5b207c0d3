"""End to end: real ``cronjob`` processes, the SQLite store on disk, a local fake of Meta's API."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pymongo
import pytest

import cronjob
from tests.support.builders import seed_request
from tests.support.fake_whatsapp import FakeWhatsApp, graph_error
from tests.support.mongo_server import MongoTestServer
from tests.support.processes import CRONJOB, CronjobProcess, free_port
from tests.support.replicas import wait_log
from tests.support.waiting import PROMPTLY, wait_until
from tests.support.webhook_receiver import Receiver

API_TOKEN = "e2e-token"
WA_TOKEN = "wa-secret-token"
PHONE_ID = "1234567890"


@pytest.fixture
def whatsapp() -> Iterator[FakeWhatsApp]:
    with FakeWhatsApp(token=WA_TOKEN, phone_number_id=PHONE_ID) as fake:
        yield fake


def _env(tmp_path: Path, whatsapp: FakeWhatsApp, port: int, **extra: str) -> dict[str, str]:
    return {
        "CRONJOB_DATA_DIR": str(tmp_path / "var"),
        "CRONJOB_PORT": str(port),
        "CRONJOB_API_TOKENS": API_TOKEN,
        "CRONJOB_WHATSAPP_API_URL": whatsapp.url,
        "CRONJOB_WHATSAPP_TOKEN": WA_TOKEN,
        "CRONJOB_WHATSAPP_PHONE_NUMBER_ID": PHONE_ID,
        "CRONJOB_POLL_INTERVAL_SECONDS": "0.5",
        **extra,
    }


def _wait_status(base: str, schedule_id: str, status: str, timeout: float = 15.0) -> dict[str, object]:
    body: dict[str, object] = {}

    def reached() -> bool:
        nonlocal body
        body = httpx.get(f"{base}/v1/schedules/{schedule_id}",
                         headers={"Authorization": f"Bearer {API_TOKEN}"}).json()
        return body["status"] == status

    assert wait_until(reached, timeout), f"schedule {schedule_id} is {body.get('status')}, not {status}: {body}"
    return body


def test_serve_sends_the_seed_message_at_send_at(tmp_path: Path, whatsapp: FakeWhatsApp) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    serve = CronjobProcess("serve", _env(tmp_path, whatsapp, port), tmp_path / "serve.log").start()
    try:
        serve.wait_http(f"{base}/healthcheck")
        assert httpx.get(f"{base}/healthcheck").json()["store"] == "ok"
        send_at = datetime.now(UTC) + timedelta(seconds=2)
        created = httpx.post(f"{base}/schedule-message", json=seed_request(send_at),
                             headers={"Authorization": f"Bearer {API_TOKEN}"})
        assert created.status_code == 201, created.text
        schedule_id = created.json()["id"]
        [request] = whatsapp.wait_for(1, timeout=15)
        assert request.received_at >= send_at.replace(microsecond=send_at.microsecond // 1000 * 1000)
        assert request.received_at - send_at < timedelta(seconds=PROMPTLY)  # sent once due, not much later
        assert request.path == f"/v23.0/{PHONE_ID}/messages"
        assert request.headers["authorization"] == f"Bearer {WA_TOKEN}"
        template = request.body["template"]
        assert template["name"] == "notificacao_entrega" and template["language"]["code"] == "pt_BR"
        assert [p["text"] for p in template["components"][0]["parameters"]] == ["Leandro", "2 dias úteis"]
        assert whatsapp.schema_errors == []
        shown = _wait_status(base, schedule_id, "succeeded")
        assert shown["result"]["wamid"] == request.wamid  # type: ignore[index]
        assert serve.stop() == 0
        assert WA_TOKEN not in serve.output() and "Leandro" not in serve.output()
    finally:
        serve.stop(signal.SIGKILL)


def test_api_and_scheduler_processes_share_the_store_across_restarts(tmp_path: Path,
                                                                     whatsapp: FakeWhatsApp) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = _env(tmp_path, whatsapp, port)
    api = CronjobProcess("api", env, tmp_path / "api.log").start()
    scheduler: CronjobProcess | None = None
    try:
        api.wait_http(f"{base}/healthcheck")
        send_at = datetime.now(UTC) + timedelta(seconds=1)
        created = httpx.post(f"{base}/schedule-message", json=seed_request(send_at),
                             headers={"Authorization": f"Bearer {API_TOKEN}"})
        assert created.status_code == 201
        # The API alone never sends: only a scheduler does, even after the message is due.
        time.sleep(2)
        assert whatsapp.requests == []
        assert api.stop() == 0
        api = CronjobProcess("api", env, tmp_path / "api2.log").start()  # restarted: the schedule is on disk
        api.wait_http(f"{base}/healthcheck")
        scheduler = CronjobProcess("scheduler", env, tmp_path / "scheduler.log").start()
        whatsapp.wait_for(1, timeout=15)
        shown = _wait_status(base, created.json()["id"], "succeeded")
        assert shown["attempts"][0]["outcome"] == "succeeded"  # type: ignore[index]
        assert len(whatsapp.requests) == 1
    finally:
        api.stop(signal.SIGKILL)
        if scheduler is not None:
            scheduler.stop(signal.SIGKILL)


def test_provider_errors_send_the_schedule_to_dead(tmp_path: Path, whatsapp: FakeWhatsApp) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    whatsapp.fail_next(400, {"error": {"message": "(#132001) Template name does not exist in the translation",
                                       "type": "OAuthException", "code": 132001, "fbtrace_id": "Az1"}})
    serve = CronjobProcess("serve", _env(tmp_path, whatsapp, port), tmp_path / "serve.log").start()
    try:
        serve.wait_http(f"{base}/healthcheck")
        created = httpx.post(f"{base}/schedule-message", json=seed_request(datetime.now(UTC)),
                             headers={"Authorization": f"Bearer {API_TOKEN}"})
        shown = _wait_status(base, created.json()["id"], "dead")
        assert shown["last_error"]["code"] == "132001"  # type: ignore[index]
        assert "Template name does not exist" in shown["last_error"]["message"]  # type: ignore[index]
        assert len(whatsapp.requests) == 1  # a template error is never retried
    finally:
        serve.stop(signal.SIGKILL)


def test_an_access_token_meta_quotes_in_its_error_is_shown_nowhere(tmp_path: Path, whatsapp: FakeWhatsApp) -> None:
    """Graph quotes an access token it cannot read (``Malformed access token <token>``): the
    schedule's last error, its attempt, its events and the status webhooks to its callback_url
    carry Meta's words with the token replaced, and the log never had them."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    receiver = Receiver("hook-secret", time.time).start()
    whatsapp.fail_next(400, graph_error(190, f"Malformed access token {WA_TOKEN}", details=f"token {WA_TOKEN}"))
    env = _env(tmp_path, whatsapp, port, CRONJOB_WEBHOOK_SECRET="hook-secret", CRONJOB_HTTP_ALLOW_HOSTS="127.0.0.1")
    serve = CronjobProcess("serve", env, tmp_path / "serve.log").start()
    try:
        serve.wait_http(f"{base}/healthcheck")
        auth = {"Authorization": f"Bearer {API_TOKEN}"}
        created = httpx.post(f"{base}/schedule-message", headers=auth,
                             json={**seed_request(datetime.now(UTC)), "callback_url": receiver.url("/hook")})
        schedule_id = created.json()["id"]
        shown = _wait_status(base, schedule_id, "dead")
        events = httpx.get(f"{base}/v1/schedules/{schedule_id}/events", headers=auth).text
        assert wait_until(lambda: any(d.type == "dead" for d in receiver.at("/hook")), 10)
        sent = [d.body.decode() for d in receiver.at("/hook")]
    finally:
        serve.stop(signal.SIGKILL)
        receiver.stop()
    assert shown["last_error"]["code"] == "190"  # type: ignore[index]
    assert shown["last_error"]["message"] == "Malformed access token ***"  # type: ignore[index]
    assert "Malformed access token ***" in events
    assert any("Malformed access token ***" in body for body in sent)
    for seen in (repr(shown), events, *sent, serve.output()):
        assert WA_TOKEN not in seen


@pytest.mark.slow
def test_serve_waits_for_a_store_that_is_down_at_start_up(tmp_path: Path, whatsapp: FakeWhatsApp) -> None:
    """A database that is down when the service starts (a rolling restart of both): the probes
    answer at once, /readyz and the API say 503 until the store can be set up, then it works,
    without a restart of cronjob."""
    port, db_port = free_port(), free_port()
    base = f"http://127.0.0.1:{port}"
    auth = {"Authorization": f"Bearer {API_TOKEN}"}
    env = _env(tmp_path, whatsapp, port,
               CRONJOB_MONGODB_URI=f"mongodb://127.0.0.1:{db_port}/?directConnection=true")
    database = MongoTestServer(tmp_path / "mongodb")
    serve = CronjobProcess("serve", env, tmp_path / "serve.log").start()
    try:
        serve.wait_http(f"{base}/livez")
        ready = httpx.get(f"{base}/readyz", timeout=10)  # the store's ping gives up after 2 s
        assert ready.status_code == 503, ready.text
        assert ready.json()["checks"]["indexes"] == "not created yet", ready.text
        assert ready.json()["checks"]["store"].startswith("unavailable"), ready.text
        refused = httpx.post(f"{base}/schedule-message", json=seed_request(datetime.now(UTC)), headers=auth)
        assert refused.status_code == 503 and refused.headers["retry-after"], refused.text
        wait_log(serve, "the store is unavailable", timeout=PROMPTLY * 3)

        database.start(db_port)
        assert wait_until(lambda: httpx.get(f"{base}/readyz", timeout=10).status_code == 200, 30), \
            serve.output()[-2000:]
        created = httpx.post(f"{base}/schedule-message", json=seed_request(datetime.now(UTC)), headers=auth)
        assert created.status_code == 201, created.text
        whatsapp.wait_for(1, timeout=15)
        _wait_status(base, created.json()["id"], "succeeded")
    finally:
        serve.stop(signal.SIGKILL)
        database.stop()


@pytest.mark.parametrize("command", ["api", "scheduler"])
def test_credentials_the_store_refuses_stop_start_up_with_one_line(command: str, tmp_path: Path) -> None:
    """A wrong password in CRONJOB_MONGODB_URI is a setting to fix, not an outage to wait out,
    nor a crash: one line naming the setting and the server's reason (exit code 2, as any bad
    setting), no traceback, and never the password."""
    database = MongoTestServer(tmp_path / "mongodb")
    uri = database.start()
    try:
        with pymongo.MongoClient(uri, serverSelectionTimeoutMS=5000) as admin:
            admin.admin.command("createUser", "cronjob", pwd="right-p4ss", roles=["root"])
        refused_uri = uri.replace("mongodb://", "mongodb://cronjob:wr0ng-p4ss@") + "&authSource=admin"
        env = {"PATH": "/usr/bin:/bin", "CRONJOB_DATA_DIR": str(tmp_path / "var"), "CRONJOB_API_TOKENS": API_TOKEN,
               "CRONJOB_PORT": str(free_port()), "CRONJOB_MONGODB_URI": refused_uri}
        result = subprocess.run([*CRONJOB, command], env=env, capture_output=True, text=True, timeout=60)
    finally:
        database.stop()
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        "cronjob: invalid setting CRONJOB_MONGODB_URI: the MongoDB server refused it: "
        "authentication failed (AuthenticationFailed)"), result.stderr
    assert "Traceback" not in result.stderr and "wr0ng-p4ss" not in result.stderr, result.stderr


def test_without_a_token_serve_creates_one_and_says_how_to_use_it(tmp_path: Path,
                                                                   whatsapp: FakeWhatsApp) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = _env(tmp_path, whatsapp, port)
    del env["CRONJOB_API_TOKENS"]
    serve = CronjobProcess("serve", env, tmp_path / "serve.log").start()
    try:
        serve.wait_http(f"{base}/healthcheck")
        token_file = tmp_path / "var" / "api-token"
        token = token_file.read_text().strip()
        assert oct(token_file.stat().st_mode & 0o777) == "0o600"
        assert str(token_file) in serve.output() and token not in serve.output()
        assert f"dashboard: {base}/dashboard (enter that token)" in serve.output()
        ok = httpx.get(f"{base}/v1/schedules", headers={"Authorization": f"Bearer {token}"})
        assert ok.status_code == 200
        assert httpx.get(f"{base}/v1/schedules").status_code == 401
    finally:
        serve.stop(signal.SIGKILL)


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback here")
def test_on_an_ipv6_address_the_printed_urls_work(tmp_path: Path, whatsapp: FakeWhatsApp) -> None:
    port = free_port()
    base = f"http://[::1]:{port}"  # the only form a client takes
    env = _env(tmp_path, whatsapp, port, CRONJOB_HOST="::1", CRONJOB_LOG_FORMAT="text")
    del env["CRONJOB_API_TOKENS"]
    api = CronjobProcess("api", env, tmp_path / "api.log").start()
    try:
        api.wait_http(f"{base}/livez")
        token = (tmp_path / "var" / "api-token").read_text().strip()
        assert f"{base}/v1/schedules\n" in api.output() and f"dashboard: {base}/dashboard" in api.output()
        wait_log(api, f"listening on {base}")
        # Served before the store is set up (503 meanwhile): ready once it is.
        assert wait_until(lambda: httpx.get(f"{base}/readyz").status_code == 200, timeout=20)
        assert httpx.get(f"{base}/v1/schedules", headers={"Authorization": f"Bearer {token}"}).status_code == 200
        busy = CronjobProcess("api", env, tmp_path / "busy.log").start()  # the same address, taken
        assert busy.process is not None and busy.process.wait(timeout=30) == 1
        assert f"cronjob: cannot listen on {base} (CRONJOB_HOST, CRONJOB_PORT):" in busy.output()
    finally:
        api.stop(signal.SIGKILL)


@pytest.mark.parametrize(("name", "value"), [("CRONJOB_PORT", "eighty"),
                                             ("CRONJOB_DEFAULT_TIMEZONE", "Mars/Base"),
                                             ("CRONJOB_WHATSAPP_API_URL", "ftp://x"),
                                             ("CRONJOB_MONGODB_URI", "db.internal:27017"),
                                             ("CRONJOB_MONGODB_URI", "mongodb://app:p@ss:word@db.internal/"),
                                             ("CRONJOB_DATA_DIR", "/proc/no-such-dir"),
                                             ("CRONJOB_DATA_DIR", ""),  # not the working directory
                                             ("CRONJOB_WHATSAPP_API_VERSION", ""),  # a segment of the URL
                                             ("CRONJOB_WHATSAPP_API_VERSION", "23.0"),
                                             ("CRONJOB_WHATSAPP_LANGUAGE", ""),
                                             ("CRONJOB_HOST", ""),  # would listen on every interface
                                             ("CRONJOB_HTTP_ALLOW_HOSTS", "10.0.0.0/33"),
                                             ("CRONJOB_SMTP_FROM", "not-an-address"),
                                             ("CRONJOB_LEASE_SECONDS", "inf"),
                                             ("CRONJOB_PAST_GRACE_SECONDS", "1e300"),
                                             ("CRONJOB_WHATSAPP_STATUS_WAIT_SECONDS", "-5"),
                                             ("CRONJOB_INTERNAL_RETENTION_HOURS", "-1"),
                                             ("CRONJOB_INTERNAL_RETENTION_HOURS", "7d"),
                                             ("CRONJOB_INTERNAL_RETENTION_HOURS", "1.5"),
                                             ("CRONJOB_INTERNAL_RETENTION_HOURS", "1000000"),
                                             ("CRONJOB_API_TOKENS", ","),
                                             ("CRONJOB_API_TOKENS", "s3cr3t-a,s3cr3t-\u00e9"),  # not in a header
                                             # one per line: no client could send a token that holds a line break
                                             ("CRONJOB_API_TOKENS_FILE", "<a file holding: s3cr3t-a\ns3cr3t-b>"),
                                             ("CRONJOB_API_READ_TOKENS", " , ,"),
                                             ("CRONJOB_API_READ_TOKENS", "s3cr3t-r,s3cr3t-\u00e9"),
                                             ("CRONJOB_API_READ_TOKENS_FILE", "<a file holding: s3cr3t-a\ns3cr3t-b>"),
                                             ("CRONJOB_WEBHOOK_SECRET_FILE", "<a file holding: s3cr3t-a\ns3cr3t-b>"),
                                             # sent in a header: a traceback, and every send refused as invalid_request
                                             ("CRONJOB_WHATSAPP_TOKEN", "s3cr3t-\u00e9"),
                                             ("CRONJOB_WHATSAPP_TOKEN_FILE", "<a file holding: s3cr3t-a\ns3cr3t-b>"),
                                             ("CRONJOB_INSTANCE_ID", ""),
                                             ("CRONJOB_BATCH_SIZE", "99999999999999999999"),
                                             ("CRONJOB_MAX_IN_FLIGHT", "1000000"),
                                             ("CRONJOB_MAX_REQUESTS_IN_FLIGHT", "-1"),
                                             ("CRONJOB_MAX_REQUESTS_IN_FLIGHT", "many"),
                                             ("CRONJOB_MAX_BODY_BYTES", "1000000000"),
                                             # no such task type: its limit would never apply
                                             ("CRONJOB_TYPE_LIMITS", "emial=5"),
                                             ("CRONJOB_TYPE_LIMITS", "whatsapp=20"),
                                             ("CRONJOB_API_TOKENS_FILE", "<a file that is not UTF-8>"),
                                             ("CRONJOB_MONGODB_URI_FILE", "<a file holding: db.internal:27017>")])
def test_a_bad_setting_stops_start_up_with_one_line_naming_it(name: str, value: str, tmp_path: Path) -> None:
    if value == "<a file that is not UTF-8>":
        value = str(tmp_path / "tokens")
        Path(value).write_bytes(b"\xff\xfe\x00token")
    elif value.startswith("<a file holding: "):  # read, but not a valid value: the _FILE variable is named
        path = tmp_path / "setting"
        path.write_text(value.removeprefix("<a file holding: ").removesuffix(">") + "\n", encoding="utf-8")
        value = str(path)
    result = subprocess.run([*CRONJOB, "serve"], env={"PATH": "/usr/bin:/bin", name: value},
                            capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"cronjob: invalid setting {name}:"), result.stderr
    assert "p@ss:word" not in result.stderr  # a URI's password is never echoed
    assert "s3cr3t" not in result.stderr  # nor a token or a secret


@pytest.mark.parametrize(("variable", "value", "says"), [
    ("CRONJOB_API_TOKENS", "s3cr3t-a", "not both"),
    # empty, its value would win over the file's: the service would run without the tokens given
    ("CRONJOB_API_TOKENS", "", "not both (CRONJOB_API_TOKENS is set, though empty)"),
    ("cronjob_api_tokens", "", "not both (CRONJOB_API_TOKENS is set, though empty)"),  # names in any case
])
def test_a_setting_given_both_as_a_variable_and_as_a_file_stops_start_up(
        variable: str, value: str, says: str, tmp_path: Path) -> None:
    secret = tmp_path / "tokens"
    secret.write_text("s3cr3t-file\n", encoding="utf-8")
    env = {"PATH": "/usr/bin:/bin", variable: value, "CRONJOB_API_TOKENS_FILE": str(secret)}
    result = subprocess.run([*CRONJOB, "serve"], env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0] == ("cronjob: invalid setting CRONJOB_API_TOKENS_FILE: set CRONJOB_API_TOKENS or "
                        f"CRONJOB_API_TOKENS_FILE, {says}"), result.stderr
    assert "s3cr3t" not in result.stderr
    assert not (tmp_path / "var").exists()  # stopped before a token was made for want of one


@pytest.mark.parametrize(("env", "says"), [
    ({"CRONJOB_API_TOKENS": "s3cr3t-a, s3cr3t-b", "CRONJOB_API_READ_TOKENS": "s3cr3t-c,s3cr3t-b"},
     "token #2 is in CRONJOB_API_TOKENS too: a token is either full or read-only, remove it from one of them"),
    ({"CRONJOB_API_READ_TOKENS": "s3cr3t-c,s3cr3t-file"},  # the full token the data dir holds
     "a token is the full API token in var/api-token too: a token is either full or read-only, "
     "remove it from one of them"),
])
def test_a_token_both_full_and_read_only_stops_start_up(env: dict[str, str], says: str, tmp_path: Path) -> None:
    """Listed in both, a token meant to be demoted to read-only (added to CRONJOB_API_READ_TOKENS,
    not yet taken out of CRONJOB_API_TOKENS) would silently go on making changes."""
    (tmp_path / "var").mkdir()
    (tmp_path / "var" / "api-token").write_text("s3cr3t-file\n", encoding="utf-8")
    result = subprocess.run([*CRONJOB, "serve"], env={"PATH": "/usr/bin:/bin", **env}, capture_output=True,
                            text=True, timeout=60, cwd=tmp_path)
    assert (result.returncode, result.stderr.strip()) == (
        2, f"cronjob: invalid setting CRONJOB_API_READ_TOKENS: {says}"), result.stderr
    assert "s3cr3t-" not in result.stderr


def test_with_read_tokens_only_serve_still_creates_a_token_that_writes(tmp_path: Path,
                                                                       whatsapp: FakeWhatsApp) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = _env(tmp_path, whatsapp, port, CRONJOB_API_READ_TOKENS="bi-reader, support-reader")
    del env["CRONJOB_API_TOKENS"]
    serve = CronjobProcess("serve", env, tmp_path / "serve.log").start()
    try:
        serve.wait_http(f"{base}/healthcheck")
        token = (tmp_path / "var" / "api-token").read_text().strip()
        assert "bi-reader" not in serve.output() and token not in serve.output()
        writer = {"Authorization": f"Bearer {token}"}
        assert wait_until(lambda: httpx.get(f"{base}/readyz").status_code == 200, timeout=20)
        created = httpx.post(f"{base}/schedule-message", json=seed_request(datetime.now(UTC) + timedelta(hours=1)),
                             headers=writer)
        assert created.status_code == 201, created.text
        path = f"{base}/v1/schedules/{created.json()['id']}"
        for reader in ("bi-reader", "support-reader"):
            assert httpx.get(path, headers={"Authorization": f"Bearer {reader}"}).status_code == 200
            assert httpx.get(f"{base}/metrics", headers={"Authorization": f"Bearer {reader}"}).status_code == 200
            refused = httpx.delete(path, headers={"Authorization": f"Bearer {reader}"})
            assert refused.status_code == 403 and "CRONJOB_API_TOKENS" in refused.json()["detail"]
        assert httpx.get(path, headers=writer).json()["status"] == "scheduled"
        assert httpx.delete(path, headers=writer).json()["status"] == "cancelled"
    finally:
        serve.stop(signal.SIGKILL)


@pytest.mark.parametrize(("name", "value", "says"), [
    ("CRONJOB_SMTP_PASSWORD", "s3cr3t-pw", "needs CRONJOB_SMTP_USERNAME"),  # was a traceback once e-mail was set
    ("CRONJOB_SMTP_HOST", " smtp.example.com", "must be a host name or address"),
    ("CRONJOB_SMTP_HOST", "smtp.example.com\n", "must be a host name or address"),
])
def test_an_smtp_setting_that_cannot_work_stops_start_up_with_one_line_naming_it(
        name: str, value: str, says: str, tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "CRONJOB_SMTP_HOST": "smtp.example.com", "CRONJOB_SMTP_FROM": "ops@example.com",
           name: value}
    result = subprocess.run([*CRONJOB, "serve"], env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"cronjob: invalid setting {name}: {says}"), result.stderr
    assert "s3cr3t" not in result.stderr


def test_a_misspelt_setting_is_named_in_a_warning(tmp_path: Path, whatsapp: FakeWhatsApp) -> None:
    """A setting whose name no setting has is left at its default: the start-up says so (its name
    only: a value may be a secret). Names are read in any case, a ``*_FILE`` only as spelt."""
    port = free_port()
    env = _env(tmp_path, whatsapp, port, CRONJOB_MONGODB_URL="mongodb://app:s3cr3t@db.internal/",
               CRONJOB_api_tokens_file=str(tmp_path / "tokens"), cronjob_log_format="text")
    api = CronjobProcess("api", env, tmp_path / "api.log").start()
    try:
        wait_log(api, "ignoring CRONJOB_MONGODB_URL, CRONJOB_api_tokens_file: no setting has that name")
        api.wait_http(f"http://127.0.0.1:{port}/livez")
        assert " WARNING cronjob ignoring" in api.output()  # cronjob_log_format was read: text lines
        assert "s3cr3t" not in api.output()
    finally:
        api.stop(signal.SIGKILL)


def _without_root_override() -> list[str]:
    """A command prefix under which file modes bind this user: none for a user other than root;
    for root, ``setpriv`` without the capabilities that let root write a read-only file."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: a read-only file stays writable")
    return ["setpriv", "--bounding-set=-dac_override,-dac_read_search"]


@pytest.mark.parametrize("store_file", ["cronjob.sqlite3", "cronjob.sqlite3-wal"])
def test_a_read_only_store_file_stops_start_up(store_file: str, tmp_path: Path) -> None:
    """SQLite opens a file it may not write read-only: the service would look ready while every
    write failed (503). A store file left by another user (a run as root) must stop start-up."""
    data_dir = tmp_path / "var"
    data_dir.mkdir()
    (data_dir / store_file).write_bytes(b"")
    (data_dir / store_file).chmod(0o444)
    env = {"PATH": "/usr/bin:/bin", "CRONJOB_DATA_DIR": str(data_dir), "CRONJOB_API_TOKENS": API_TOKEN,
           "CRONJOB_PORT": str(free_port())}
    result = subprocess.run([*_without_root_override(), *CRONJOB, "serve"], env=env,
                            capture_output=True, text=True, timeout=30)
    assert (result.returncode, result.stderr.strip()) == (
        2, f"cronjob: invalid setting CRONJOB_DATA_DIR: cannot write {data_dir / store_file}: Permission denied")


def test_a_store_path_that_is_no_file_stops_start_up(tmp_path: Path) -> None:
    store = tmp_path / "var" / "cronjob.sqlite3"
    store.mkdir(parents=True)
    env = {"PATH": "/usr/bin:/bin", "CRONJOB_DATA_DIR": str(store.parent), "CRONJOB_API_TOKENS": API_TOKEN,
           "CRONJOB_PORT": str(free_port())}
    result = subprocess.run([*CRONJOB, "scheduler"], env=env, capture_output=True, text=True, timeout=30)
    assert (result.returncode, result.stderr.strip()) == (
        2, f"cronjob: invalid setting CRONJOB_DATA_DIR: cannot write {store}: Is a directory")


@pytest.mark.parametrize(("extra", "reason"), [
    ({}, "the embedded SQLite store is kept there while CRONJOB_MONGODB_URI is unset"),
    ({"CRONJOB_MONGODB_URI": "mongodb://db.internal:27017/?replicaSet=rs0"},
     "an API token is created there while CRONJOB_API_TOKENS is unset")])
def test_an_unusable_data_dir_names_what_needs_it(extra: dict[str, str], reason: str, tmp_path: Path) -> None:
    """A container with a read-only root (the Kubernetes manifests) needs no data directory once
    the Secret gives CRONJOB_MONGODB_URI and CRONJOB_API_TOKENS: the line names the one missing."""
    (tmp_path / "file").write_text("")
    data_dir = tmp_path / "file" / "var"  # below a regular file: cannot be created, root or not
    env = {"PATH": "/usr/bin:/bin", "CRONJOB_DATA_DIR": str(data_dir), "CRONJOB_PORT": str(free_port()), **extra}
    result = subprocess.run([*CRONJOB, "api"], env=env, capture_output=True, text=True, timeout=30)
    assert (result.returncode, result.stderr.strip()) == (
        2, f"cronjob: invalid setting CRONJOB_DATA_DIR: cannot use {data_dir}: Not a directory ({reason})")


def test_version() -> None:
    result = subprocess.run([*CRONJOB, "--version"], capture_output=True, text=True, timeout=60)
    assert (result.returncode, result.stdout.strip()) == (0, f"cronjob {cronjob.__version__}")


@pytest.mark.parametrize("command", ["serve", "scheduler"])
def test_the_rocketry_engine_without_its_extra_stops_start_up_with_one_line(command: str, tmp_path: Path) -> None:
    """CRONJOB_ENGINE=rocketry where the ``rocketry`` extra is not installed: said before anything
    serves, naming the setting and what installs it, rather than a traceback once the API is up."""
    absent = tmp_path / "site" / "rocketry"  # what `import rocketry` does where it is not installed
    absent.mkdir(parents=True)
    (absent / "__init__.py").write_text(
        'raise ModuleNotFoundError("No module named \'rocketry\'", name="rocketry")\n', encoding="utf-8")
    port = free_port()
    result = subprocess.run([*CRONJOB, command], capture_output=True, text=True, timeout=60, cwd=tmp_path,
                            env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(absent.parent),
                                 "CRONJOB_ENGINE": "rocketry", "CRONJOB_API_TOKENS": API_TOKEN,
                                 "CRONJOB_PORT": str(port)})
    assert (result.returncode, result.stderr.strip().splitlines()) == (2, [
        "cronjob: invalid setting CRONJOB_ENGINE: rocketry needs the rocketry extra "
        "(pip install 'cronjob[rocketry]', which pins rocketry-fix): "
        "cannot import rocketry: ModuleNotFoundError: No module named 'rocketry'"]), result.stderr
    assert "listening" not in result.stdout + result.stderr
