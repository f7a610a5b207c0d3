"""The SQLite store's tables and indexes, their migration, and the SQL text the repository runs.

Also the pure helpers between values and columns: the task-type filter's SQL condition and the
epoch milliseconds that the time columns hold. Nothing here opens or holds a connection.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Collection, Mapping, Sequence
from datetime import UTC, datetime, timedelta

from cronjob.domain.schedule import LIVE_STATUSES, ScheduleStatus
from cronjob.ports.repository import ListCursor

from cronjob_adapters.codec import RENAMED_STATUSES, bound_millis, to_millis

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS schedules (
        id TEXT PRIMARY KEY,
        status TEXT NOT NULL,
        next_run_at INTEGER,
        lease_until INTEGER,
        lease_attempt_id TEXT,
        idempotency_key TEXT UNIQUE,
        created_at INTEGER NOT NULL,
        task_type TEXT NOT NULL,
        provider_message_id TEXT,
        user_id TEXT,
        labels TEXT,
        doc TEXT NOT NULL
    )""",
    # With ``id`` last, the claim's ORDER BY next_run_at, id is read straight off the index and
    # stops at its LIMIT, even when thousands of schedules share one next_run_at (a burst).
    "CREATE INDEX IF NOT EXISTS schedules_due_at ON schedules (status, next_run_at, id)",
    "DROP INDEX IF EXISTS schedules_due",  # its predecessor, without ``id``
    "CREATE INDEX IF NOT EXISTS schedules_lease ON schedules (status, lease_until)",
    "CREATE INDEX IF NOT EXISTS schedules_created ON schedules (created_at, id)",
    # Listing by task type (GET /v1/schedules?type=...), newest first, without scanning the others.
    "CREATE INDEX IF NOT EXISTS schedules_type_created ON schedules (task_type, created_at, id)",
    # Listing by status alone (the dead letters: GET /v1/schedules?status=dead), newest first, read
    # in order up to the page's end rather than every row of that status sorted for each page.
    "CREATE INDEX IF NOT EXISTS schedules_status_created ON schedules (status, created_at, id)",
)


#: Columns added after the first release: (name, where in the stored document its value is,
#: the columns of its index). ``add_columns`` gives an older database each, filled from the documents.
ADDED_COLUMNS = (
    # Meta's status webhooks find their schedule by the message id the send returned.
    ("provider_message_id", "$.result.provider_message_id", "provider_message_id"),
    # GET /v1/schedules?userId=..., newest first, without scanning everyone else's.
    ("user_id", "$.user_id", "user_id, created_at, id"),
    # The labels as JSON (NULL: none), which the triggers of LABELS copy into schedule_labels.
    ("labels", "$.labels", None),
)


#: A user's schedules in one status, newest first: a bulk change's pages (``:cancel``,
#: ``:pause``, ``:resume``, ``:retry`` with a ``userId``: one status at a time) and
#: ``GET /v1/schedules?userId=...&status=...``, and in a due window a user's live schedules,
#: without reading the rest of that user's (a large account's history: 100,000 finished
#: schedules read for each page of its few waiting ones).
USER_STATUS_INDEX = "CREATE INDEX IF NOT EXISTS schedules_user_status ON schedules (user_id, status, created_at, id)"


def add_columns(conn: sqlite3.Connection) -> None:
    """Give a database made before any of ``ADDED_COLUMNS`` that column (filled from the stored
    documents) and its index, and :data:`USER_STATUS_INDEX`. Idempotent; runs in
    ``initialize``'s transaction."""
    columns = {row[1] for row in conn.execute("PRAGMA table_info(schedules)")}
    for name, path, indexed in ADDED_COLUMNS:
        if name not in columns:
            conn.execute(f"ALTER TABLE schedules ADD COLUMN {name} TEXT")
            conn.execute(f"UPDATE schedules SET {name} = json_extract(doc, ?)", (path,))
        if indexed is not None:
            conn.execute(f"CREATE INDEX IF NOT EXISTS schedules_{name} ON schedules ({indexed})")
    conn.execute(USER_STATUS_INDEX)


def rename_statuses(conn: sqlite3.Connection) -> None:
    """Store the statuses earlier versions named otherwise (``RENAMED_STATUSES``) by their name
    now, in the column and the document alike, so that a list by status and the counts find
    them. Idempotent (a lookup of the status index); runs in ``initialize``'s transaction."""
    for old, new in RENAMED_STATUSES.items():
        conn.execute("UPDATE schedules SET status = :new, doc = json_set(doc, '$.status', :new)"
                     " WHERE status = :old", {"old": old, "new": new.value})


#: The label index: one row per (schedule, label), looked up by (key, value) and read newest
#: first (its schedule's ``created_at``, copied as ``schedule_created_at``, never changed), so
#: that a page of a label's schedules stops at the page's end instead of sorting every one of
#: them (a campaign of 100,000: half a second a page). Triggers keep it from the ``labels``
#: column, so every write of a row (an add, a save, a purge) changes its labels in the same
#: statement, and so the same transaction; a claim or a lease renewal, which leave the column
#: alone, do not touch it. Made after ``add_columns`` (the column must exist), by
#: :func:`make_labels`; a database from before labels has none to copy. The column is not named
#: ``created_at``, which an earlier version's label query (a rolling update, a roll-back) names
#: unqualified: it would become ambiguous.
_LABELS_COLUMNS = """(
        schedule_id TEXT NOT NULL,
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        schedule_created_at INTEGER,
        PRIMARY KEY (schedule_id, key)
    ) WITHOUT ROWID"""
LABELS_TABLE = f"CREATE TABLE IF NOT EXISTS schedule_labels {_LABELS_COLUMNS}"
_LABEL_TRIGGERS = ("schedule_labels_added", "schedule_labels_changed", "schedule_labels_deleted")
LABELS = (
    # Its predecessor, without the order (an earlier version opening the file makes it again).
    "DROP INDEX IF EXISTS schedule_labels_key_value",
    "CREATE INDEX IF NOT EXISTS schedule_labels_newest ON schedule_labels (key, value, schedule_created_at, schedule_id)",
    """CREATE TRIGGER IF NOT EXISTS schedule_labels_added AFTER INSERT ON schedules
        WHEN new.labels IS NOT NULL BEGIN
        INSERT INTO schedule_labels (schedule_id, key, value, schedule_created_at)
            SELECT new.id, key, value, new.created_at FROM json_each(new.labels);
    END""",
    """CREATE TRIGGER IF NOT EXISTS schedule_labels_changed AFTER UPDATE OF labels ON schedules
        WHEN old.labels IS NOT new.labels BEGIN
        DELETE FROM schedule_labels WHERE schedule_id = old.id;
        INSERT INTO schedule_labels (schedule_id, key, value, schedule_created_at)
            SELECT new.id, key, value, new.created_at FROM json_each(new.labels);
    END""",
    """CREATE TRIGGER IF NOT EXISTS schedule_labels_deleted AFTER DELETE ON schedules
        WHEN old.labels IS NOT NULL BEGIN
        DELETE FROM schedule_labels WHERE schedule_id = old.id;
    END""",
)


def make_labels(conn: sqlite3.Connection) -> None:
    """Make the label index (:data:`LABELS_TABLE`, :data:`LABELS`). A file whose label rows
    predate their order gets them again with ``schedule_created_at`` (once), and the triggers
    that fill it in place of those that did not. Idempotent; runs in ``initialize``'s transaction."""
    conn.execute(LABELS_TABLE)
    columns = {row[1] for row in conn.execute("PRAGMA table_info(schedule_labels)")}
    if "schedule_created_at" not in columns:
        _order_labels(conn)
    for statement in LABELS:
        conn.execute(statement)


def _order_labels(conn: sqlite3.Connection) -> None:
    """Copy the label rows into a table with ``schedule_created_at`` in place of the one without.

    Each row's ``created_at`` is joined in from a copy of the ``(created_at, id)`` index sorted
    by id, both read in id order: filling the column in place, a lookup of each schedule's row
    (a million random reads of the documents' pages) took 40 to 100 s for a million schedules,
    this takes under 10, so that a file is not held locked for minutes when the version that
    needs it first opens it. The triggers go first (they name the table); :data:`LABELS` makes
    them again, and the index."""
    for trigger in _LABEL_TRIGGERS:
        conn.execute(f"DROP TRIGGER IF EXISTS {trigger}")
    conn.execute("CREATE TEMP TABLE schedules_made (id TEXT PRIMARY KEY, created_at INTEGER) WITHOUT ROWID")
    conn.execute("INSERT INTO schedules_made SELECT id, created_at FROM schedules INDEXED BY schedules_created"
                 " WHERE created_at IS NOT NULL ORDER BY id")
    conn.execute(f"CREATE TABLE schedule_labels_ordered {_LABELS_COLUMNS}")
    conn.execute("INSERT INTO schedule_labels_ordered (schedule_id, key, value, schedule_created_at)"
                 " SELECT l.schedule_id, l.key, l.value, m.created_at FROM schedule_labels AS l"
                 " CROSS JOIN temp.schedules_made AS m ON m.id = l.schedule_id ORDER BY l.schedule_id, l.key")
    conn.execute("DROP TABLE temp.schedules_made")
    conn.execute("DROP TABLE schedule_labels")
    conn.execute("ALTER TABLE schedule_labels_ordered RENAME TO schedule_labels")


#: The schedule counts (``count_by_status_and_type``: ``GET /v1/stats``, ``/metrics``), kept
#: per (status, task type) by triggers in the same statement as every write of a row, so that
#: reading them is a read of a few rows, not a group-by over every schedule (which, with a
#: million schedules, takes seconds and so answers 503 where a reply within 2 s is wanted). A
#: claim or a save changes a row's status: two counts; a renewal or a save in the same status,
#: none. Made, and filled from the table, when missing (see :func:`keep_counts`).
COUNTS_TABLE = """CREATE TABLE schedule_counts (
    status TEXT NOT NULL,
    task_type TEXT NOT NULL,
    n INTEGER NOT NULL,
    PRIMARY KEY (status, task_type)
) WITHOUT ROWID"""
COUNTS = (
    """CREATE TRIGGER IF NOT EXISTS schedule_counts_added AFTER INSERT ON schedules BEGIN
        INSERT INTO schedule_counts (status, task_type, n) VALUES (new.status, new.task_type, 1)
            ON CONFLICT (status, task_type) DO UPDATE SET n = n + 1;
    END""",
    """CREATE TRIGGER IF NOT EXISTS schedule_counts_deleted AFTER DELETE ON schedules BEGIN
        UPDATE schedule_counts SET n = n - 1 WHERE status = old.status AND task_type = old.task_type;
    END""",
    """CREATE TRIGGER IF NOT EXISTS schedule_counts_moved AFTER UPDATE OF status, task_type ON schedules
        WHEN old.status IS NOT new.status OR old.task_type IS NOT new.task_type BEGIN
        UPDATE schedule_counts SET n = n - 1 WHERE status = old.status AND task_type = old.task_type;
        INSERT INTO schedule_counts (status, task_type, n) VALUES (new.status, new.task_type, 1)
            ON CONFLICT (status, task_type) DO UPDATE SET n = n + 1;
    END""",
)
#: The counts as kept (a pair whose schedules are all gone keeps its row, at 0).
READ_COUNTS = "SELECT status, task_type, n FROM schedule_counts WHERE n > 0"


def keep_counts(conn: sqlite3.Connection) -> None:
    """Make the kept counts (:data:`COUNTS_TABLE`, filled from the table: one read of every
    row, once, when a file from before them is first opened by this version) and their
    triggers (:data:`COUNTS`). The triggers live in the file, so an earlier version's writes
    (a rolling update, a roll-back) keep the counts too. Runs in ``initialize``'s transaction,
    after :func:`rename_statuses`."""
    made = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schedule_counts'").fetchone()
    if made is None:
        conn.execute(COUNTS_TABLE)
        conn.execute("INSERT INTO schedule_counts (status, task_type, n)"
                     " SELECT status, task_type, count(*) FROM schedules GROUP BY status, task_type")
    for statement in COUNTS:
        conn.execute(statement)


#: The document's keys added since the first release, oldest first (``run_timeout_seconds`` last).
#: A version that writes a document writes every key it knows, so a document without the last
#: one was written by an earlier version, which dropped those it did not know.
ADDED_KEYS = ("misfire", "send_by", "callback_url", "events", "delivery", "pause_after_failures",
              "failed_in_a_row", "labels", "run_timeout_seconds")

#: The name of the trigger of :func:`keep_added_keys`.
KEEP_ADDED_KEYS_TRIGGER = "schedules_keep_added_keys"
_KEYS_MARK = "-- keeps the document keys added since the first release: "


def keep_added_keys_trigger(keys: Sequence[str]) -> str:
    """The trigger that keeps what an earlier version drops, for a version whose added keys
    are ``keys`` (oldest first; :data:`ADDED_KEYS` for this one).

    A replica of an earlier version still running beside this one (a rolling update, or the api
    and scheduler processes upgraded one at a time), or the version rolled back to, rewrites
    whole documents without the keys it does not know (a schedule's labels, its run time limit).
    The trigger lives in the file, so it acts on that version's writes too: each key missing
    from the new document is put back as the previous one held it. Writes that hold the last key
    are left alone (one lookup). Its text is marked with how many keys it knows, which
    :func:`keep_added_keys` compares."""
    return f"""CREATE TRIGGER {KEEP_ADDED_KEYS_TRIGGER} AFTER UPDATE OF doc ON schedules
        WHEN json_type(new.doc, '$.{keys[-1]}') IS NULL BEGIN
        {_KEYS_MARK}{len(keys)}
        UPDATE schedules SET doc = json_insert(new.doc, {", ".join(
            f"'$.{key}', json_extract(old.doc, '$.{key}')" for key in keys)})
        WHERE id = new.id;
    END"""


def keep_added_keys(conn: sqlite3.Connection) -> None:
    """Make this version's :func:`keep_added_keys_trigger` in the file, unless the file holds
    one that knows more keys: a later version's, made when it opened the file (this version is
    then a replica beside it, or the version rolled back to), which puts back that version's
    keys too. A trigger without a mark (made before they were marked) knows no more than this
    version. Runs in ``initialize``'s transaction, at every open."""
    wanted = keep_added_keys_trigger(ADDED_KEYS)
    found = conn.execute("SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = ?",
                         (KEEP_ADDED_KEYS_TRIGGER,)).fetchone()
    if found is not None:
        if found[0] == wanted or _keys_known(found[0]) > len(ADDED_KEYS):
            return
        conn.execute(f"DROP TRIGGER {KEEP_ADDED_KEYS_TRIGGER}")
    conn.execute(wanted)


def _keys_known(trigger_sql: str) -> int:
    """How many added keys the trigger ``trigger_sql`` knows, by its mark (0 without one)."""
    marked = re.search(re.escape(_KEYS_MARK) + r"(\d+)", trigger_sql)
    return int(marked.group(1)) if marked else 0


def labels_column(labels: Mapping[str, str]) -> str | None:
    """The ``labels`` column of a schedule with ``labels``: JSON, keys sorted (the same labels
    are the same text, so a save that keeps them leaves the label index alone), None for none."""
    return json.dumps(labels, sort_keys=True, ensure_ascii=False, separators=(",", ":")) if labels else None


def label_filter(labels: Mapping[str, str] | None) -> tuple[str, str, dict[str, str]]:
    """What reads the schedules carrying every one of ``labels`` through the label index: the
    FROM clause, the condition (with named parameters) and its parameters. The first label's
    index rows drive the query (``CROSS JOIN`` keeps SQLite from scanning ``schedules`` in
    ``created_at`` order instead), newest first when ordered by :data:`LABEL_ORDER`; each other
    label is looked up in the same index."""
    if not labels:
        return "schedules", "", {}
    params: dict[str, str] = {}
    clause = ""
    for i, (key, value) in enumerate(labels.items()):
        params[f"lk{i}"], params[f"lv{i}"] = key, value
        if i == 0:
            clause += " AND l0.key = :lk0 AND l0.value = :lv0"
        else:
            clause += f" AND id IN (SELECT schedule_id FROM schedule_labels WHERE key = :lk{i} AND value = :lv{i})"
    return "schedule_labels AS l0 CROSS JOIN schedules ON schedules.id = l0.schedule_id", clause, params


#: The newest-first order of a list by labels: the first label's index rows, in their order.
LABEL_ORDER = ("l0.schedule_created_at", "l0.schedule_id")


def due_window(due_after: datetime | None, due_before: datetime | None) -> tuple[str, dict[str, int | None]]:
    """The condition (with named parameters) of the half-open window ``due_after <= next_run_at <
    due_before`` (a bound that is None leaves that side open; a NULL ``next_run_at`` is in no
    window). Each bound is rounded up to the millisecond the column holds: exact, see
    :func:`~cronjob_adapters.codec.bound_millis`."""
    clause = ""
    params: dict[str, int | None] = {}
    if due_after is not None:
        clause += " AND next_run_at >= :due_after"
        params["due_after"] = to_epoch_ms(bound_millis(due_after))
    if due_before is not None:
        clause += " AND next_run_at < :due_before"
        params["due_before"] = to_epoch_ms(bound_millis(due_before))
    return clause, params


def updated_window(updated_after: datetime | None, updated_before: datetime | None) -> tuple[str, dict[str, str]]:
    """The condition (with named parameters) of the half-open window ``updated_after <= updated_at
    < updated_before`` (a bound that is None leaves that side open), each bound rounded up to the
    millisecond as :func:`due_window` rounds them. ``updated_at`` has no column: it is read from
    the document, UTC ISO text that sorts as the instants do (``isoformat`` leaves out a zero
    fraction, and ``+`` sorts before ``.``), so the bounds are written the same way."""
    clause = ""
    params: dict[str, str] = {}
    if updated_after is not None:
        clause += " AND json_extract(doc, '$.updated_at') >= :updated_after"
        params["updated_after"] = bound_millis(updated_after).isoformat()
    if updated_before is not None:
        clause += " AND json_extract(doc, '$.updated_at') < :updated_before"
        params["updated_before"] = bound_millis(updated_before).isoformat()
    return clause, params


def after_position(after: ListCursor | None, column: str, direction: str,
                   id_column: str = "id") -> tuple[str, dict[str, object]]:
    """The condition (with named parameters) of the rows strictly after the cursor ``after`` in
    the order ``column, id_column`` (``direction``: ``"<"`` for newest first, ``">"`` for
    soonest first): a row-value comparison, which SQLite reads as a range of an index ending in
    ``column, id_column`` (after an equality on its leading columns, if any). The cursor's
    instant is cut to the millisecond the column holds, as the row's own was. Empty without a
    cursor."""
    if after is None:
        return "", {}
    return (f" AND ({column}, {id_column}) {direction} (:after_at, :after_id)",
            {"after_at": to_epoch_ms(after.at), "after_id": after.id})


def list_query(
    *,
    status: ScheduleStatus | None,
    task_types: Collection[str] | None,
    exclude_types: Collection[str],
    user_id: str | None,
    labels: Mapping[str, str] | None,
    limit: int,
    offset: int,
    due_after: datetime | None,
    due_before: datetime | None,
    updated_after: datetime | None,
    updated_before: datetime | None,
    after: ListCursor | None = None,
) -> tuple[str, dict[str, object]] | None:
    """The query of ``ScheduleRepository.list`` and its parameters, or None when nothing can
    match (a window with a status that has no due time).

    Newest first: through the user's index (with a status, the user's and status's), or the
    label index (in its order, :data:`LABEL_ORDER`), or ``created_at``'s. In a
    due-time window, soonest first: without a user or labels, one branch per live status, each a
    range of the ``(status, next_run_at, id)`` index read in its order and cut at ``offset +
    limit``, so that no branch reads past the page, then merged; with them, one query that their
    index drives (a user's or a label's schedules, without reading everyone else's: per status,
    SQLite would rather walk the due-time index for a user), its matches sorted. A last-change
    window is one more condition of every branch (see :func:`updated_window`).

    A cursor (``after``) is one more condition too (see :func:`after_position`), which starts
    the range of the index that serves the order; in a due-time window it replaces ``due_after``
    when it lies at or after it (it then implies it), and is left out when it lies before it (it
    is then implied), so that SQLite never picks the weaker of two lower bounds of the range.
    """
    types, type_params = type_filter(task_types, exclude_types)
    source, labelled, label_params = label_filter(labels)
    changed, changed_params = updated_window(updated_after, updated_before)
    where = "WHERE 1 = 1" + types + labelled + changed
    params: dict[str, object] = {**type_params, **label_params, **changed_params, "limit": limit, "offset": offset}
    if user_id is not None:
        where += " AND user_id = :user_id"
        params["user_id"] = user_id
    if due_after is None and due_before is None:
        if status is not None:
            where += " AND status = :status"
            params["status"] = status.value
        at, key = LABEL_ORDER if labels else ("created_at", "id")
        position, position_params = after_position(after, at, "<", key)
        where += position
        params.update(position_params)
        return f"SELECT doc FROM {source} {where} ORDER BY {at} DESC, {key} DESC LIMIT :limit OFFSET :offset", params

    statuses = sorted(LIVE_STATUSES) if status is None else [status] if status in LIVE_STATUSES else []
    if not statuses:
        return None  # a schedule in a final status has no due time
    if after is not None and due_after is not None:
        if to_millis(after.at) >= bound_millis(due_after):
            due_after = None
        else:
            after = None
    window, bounds = due_window(due_after, due_before)
    position, position_params = after_position(after, "next_run_at", ">")
    where += window + position
    params.update(bounds)
    params.update(position_params)
    names = [f"due_s{i}" for i in range(len(statuses))]
    params.update({name: s.value for name, s in zip(names, statuses, strict=True)})
    page = "ORDER BY next_run_at, id LIMIT :limit OFFSET :offset"
    if labels or user_id is not None:
        return f"SELECT doc FROM {source} {where} AND status IN ({', '.join(':' + n for n in names)}) {page}", params
    params["upto"] = offset + limit
    branches = " UNION ALL ".join(
        f"SELECT * FROM (SELECT doc, next_run_at, id FROM {source} {where} AND status = :{name}"
        " ORDER BY next_run_at, id LIMIT :upto)" for name in names)
    return f"SELECT doc FROM ({branches}) {page}", params


# Due work, through the two status indexes; each branch is limited before the merge. Lapsed
# leases are sorted by their due time too: there are few (at most the runs in flight at a crash).
DUE = """
SELECT id, doc, json_extract(doc, '$.updated_at') FROM (
    SELECT * FROM (
        SELECT id, doc, next_run_at AS due FROM schedules
        WHERE status = 'scheduled' AND next_run_at <= :now {types}
        ORDER BY next_run_at, id LIMIT :limit)
    UNION ALL
    SELECT * FROM (
        SELECT id, doc, COALESCE(next_run_at, :now) AS due FROM schedules
        WHERE status = 'running' AND lease_until < :now {types}
        ORDER BY due, id LIMIT :limit)
)
ORDER BY due, id LIMIT :limit
"""


def type_filter(
    task_types: Collection[str] | None, exclude_types: Collection[str]
) -> tuple[str, dict[str, str]]:
    """The SQL condition (with named parameters) that keeps only the wanted task types."""
    clause, params = "", {}
    if task_types is not None:
        names = [f":in{i}" for i in range(len(task_types))]
        params.update({n[1:]: t for n, t in zip(names, task_types, strict=True)})
        clause += f" AND task_type IN ({', '.join(names) or 'NULL'})"
    if exclude_types:
        names = [f":ex{i}" for i in range(len(exclude_types))]
        params.update({n[1:]: t for n, t in zip(names, exclude_types, strict=True)})
        clause += f" AND task_type NOT IN ({', '.join(names)})"
    return clause, params


NEXT_DUE = """
SELECT min(t) FROM (
    SELECT min(next_run_at) AS t FROM schedules WHERE status = 'scheduled'
    UNION ALL
    SELECT min(lease_until) AS t FROM schedules WHERE status = 'running'
)
"""


def to_epoch_ms(value: datetime | None) -> int | None:
    """Epoch milliseconds of ``value`` (UTC, truncated like the codec), or None."""
    return None if value is None else (to_millis(value) - _EPOCH) // _MS


def from_epoch_ms(value: int | None) -> datetime | None:
    return None if value is None else _EPOCH + value * _MS


#: A fenced write of a whole schedule (``save``). The id, idempotency key, task type and
#: created_at never change, so their columns are not written: SQLite rewrites the entries of
#: every index over a column named in SET, changed or not (a third of a save's cost).
#:
#: The document written is this version's (``:doc``) followed by the keys a later version
#: added to the stored one (none but during a rolling update or after a roll-back), so that they
#: survive this version's saves, as MongoDB's key-by-key updates keep them. Those are what is
#: left of the stored document (``schedules.doc``, read in an UPDATE, is the stored one) once
#: ``:written_keys`` is patched over it: an object of every key ``:doc`` holds and of those this
#: version leaves out on purpose (``codec.OPTIONAL_KEYS``: an idempotency key the schedule no
#: longer has), each null, which a patch removes. Each value left is as it was written, to the
#: character (a number, a null, an object whole); joined to ``:doc`` as text, since a
#: ``json_patch`` of them would drop those whose value is null.
SAVE = (
    "UPDATE schedules SET status = :status, next_run_at = :next_run_at,"
    " lease_until = :lease_until, lease_attempt_id = :lease_attempt_id,"
    " provider_message_id = :provider_message_id, labels = :labels,"
    " doc = (SELECT CASE later WHEN '{}' THEN :doc"
    " ELSE substr(:doc, 1, length(:doc) - 1) || ',' || substr(later, 2) END"
    " FROM (SELECT json_patch(schedules.doc, :written_keys) AS later))"
    " WHERE id = :id AND status = :expected_status"
)
FENCE = " AND lease_attempt_id = :expected_attempt"

#: A claim, in place: what ``Schedule.claim`` changes (status, lease, updated_at: the
#: ``claim_version`` of the one read), encoded as the codec encodes it, without decoding and
#: re-encoding the whole document while the write lock is held. ``taken_over_from`` is the previous owner when a lapsed lease is taken over. (The
#: contract suite checks that what a claim returns equals what is stored.)
CLAIM_IN_PLACE = (
    "UPDATE schedules SET status = 'running', lease_until = :until_ms, lease_attempt_id = :attempt_id,"
    " doc = json_set(doc, '$.status', 'running', '$.updated_at', :updated_at,"
    " '$.lease', json_object('owner', :owner, 'attempt_id', :attempt_id, 'claimed_at', :claimed_at,"
    " 'until', :until, 'taken_over_from',"
    " CASE WHEN status = 'running' THEN json_extract(doc, '$.lease.owner') END))"
    " WHERE id = :id"
)
