"""Analytics writes: the rollup of the proxy's access log, lifecycle events, pruning.

The access log (``<proxy dir>/analytics.log``, mode 0600; deploy/nginx/nginx.conf.template)
has one tab-separated line per request to a space:

    msec  server_name  status  request_time  bytes_sent  kind  remote_addr  uri

``kind`` is "api" (a path under /api/, /gradio_api/, /run/, /queue/ ... or an Accept of
JSON), "page" (a browser asking for HTML) or "other" (assets). ``uri`` is nginx's ``$uri``
(never ``$request_uri``: tickets travel in query strings).

`rollup` reads what was appended since the last run (the cursor: the file's inode and byte
offset, in Postgres), adds it to the minute and hour rollups and the day's visitor hashes,
moves the cursor in the same transaction (a line counts once, even when two rollups race or
one dies half way), and then erases what it read: the bytes are deallocated with
``fallocate(PUNCH_HOLE)`` (the file keeps its size, nginx appends behind it undisturbed), so
a client address lives in clear only until the next rollup. A truncated or replaced file
(a new inode, or shorter than the cursor) is read from its start.
"""
from __future__ import annotations

import bisect
import contextlib
import ctypes
import ctypes.util
import errno
import hashlib
import hmac
import io
import logging
import os
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone as dt_timezone
from pathlib import Path

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.utils import timezone
from psycopg2.extras import execute_values

from spaces.records.models import Space

from .models import (LATENCY_BOUNDS_MS, LATENCY_BUCKETS, AnalyticsCursor, AnalyticsEvent, AnalyticsHour,
                     AnalyticsMinute, AnalyticsSalt, AnalyticsVisitor)

log = logging.getLogger(__name__)

CURSOR_NAME = "proxy"
# Read (and commit) at most this much per transaction; a backlog takes several in one run.
CHUNK_BYTES = 32 * 2**20
# Counters per rollup key, in this order, then the latency histogram.
REQUESTS, PAGES, APIS, C4XX, C5XX, BYTES = range(6)
COUNTERS = 6


def log_path() -> Path:
    return Path(settings.PROXY_ROUTES_DIR).parent / "analytics.log"


# ----------------------------------------------------------------------------- lifecycle events
def record_event(space_id: int, kind: str, *, duration_ms: float | None = None) -> None:
    """Record a wake (with its latency), sleep, restart or crash of a space. Never raises:
    analytics must not break the lifecycle step that calls it."""
    try:
        with transaction.atomic():   # a savepoint inside a caller's transaction: a failure stays here
            AnalyticsEvent.objects.create(space_id=space_id, kind=AnalyticsEvent.Kind(kind),
                                          at=timezone.now(),
                                          duration_ms=None if duration_ms is None else max(0, round(duration_ms)))
    except (DatabaseError, ValueError) as exc:
        log.warning("analytics: could not record %s of space %s: %s", kind, space_id, exc)


# ----------------------------------------------------------------------------- the rollup
@dataclass
class RollupResult:
    lines: int = 0        # lines read
    counted: int = 0      # lines of a known space, added to the rollups
    skipped: int = 0      # malformed lines, or of a space that no longer exists
    bytes: int = 0

    def add(self, other: RollupResult) -> None:
        self.lines += other.lines
        self.counted += other.counted
        self.skipped += other.skipped
        self.bytes += other.bytes


def rollup(*, path: Path | None = None) -> RollupResult:
    """Roll up everything appended to the access log since the last run, erase it, prune."""
    path = path or log_path()
    total = RollupResult()
    while True:
        result, more = _rollup_chunk(path)
        total.add(result)
        if not more:
            break
    prune()
    return total


def _rollup_chunk(path: Path) -> tuple[RollupResult, bool]:
    result = RollupResult()
    with transaction.atomic():
        # The row lock serializes concurrent rollups (two beats, a manual run).
        cursor, _ = AnalyticsCursor.objects.select_for_update().get_or_create(name=CURSOR_NAME)
        try:
            fh = open(path, "rb")
        except FileNotFoundError:
            return result, False
        with fh:
            st = os.fstat(fh.fileno())
            offset = cursor.offset
            if st.st_ino != cursor.inode or st.st_size < offset or _rewritten(fh.fileno(), offset, st):
                offset = 0                                  # rotated, replaced or truncated
            if offset == 0:
                offset = _first_data(fh.fileno(), st.st_size)
            fh.seek(offset)
            data = fh.read(CHUNK_BYTES)
        end = data.rfind(b"\n") + 1                         # only whole lines; the rest waits
        if end == 0 and len(data) == CHUNK_BYTES:
            end = len(data)                                 # a "line" this long is garbage
        data = data[:end]
        if data:
            _aggregate(data, result)
        cursor.inode, cursor.offset = st.st_ino, offset + len(data)
        cursor.save()
    result.bytes = len(data)
    _erase(path, st.st_ino, cursor.offset)
    return result, bool(data) and cursor.offset < st.st_size


def _rewritten(fd: int, offset: int, st: os.stat_result) -> bool:
    """Whether data sits where the last rollup punched its hole: the file was truncated (or
    replaced under a reused inode) and has grown past the cursor since."""
    if not _punching or offset == 0:
        return False
    block = max(st.st_blksize, 512)
    return _first_data(fd, st.st_size) < (offset // block) * block


def _first_data(fd: int, size: int) -> int:
    """Where the file's data starts: a file read from the beginning may start with the hole
    an earlier rollup punched."""
    try:
        return os.lseek(fd, 0, os.SEEK_DATA)
    except OSError as exc:
        return size if exc.errno == errno.ENXIO else 0


_FALLOC_FL_KEEP_SIZE = 0x01
_FALLOC_FL_PUNCH_HOLE = 0x02
_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
_libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_longlong, ctypes.c_longlong]
_punching = True      # False once the file system refused to punch a hole (then: truncation)


def _erase(path: Path, inode: int, upto: int) -> None:
    """Deallocate the first `upto` bytes (read and counted) of the log. The standard library
    has no hole punching (os.posix_fallocate only allocates), hence ctypes. Where the file
    system cannot punch holes, a log read to its end is truncated instead (a line nginx
    appends between the size check and the truncation is then lost)."""
    if upto <= 0:
        return
    try:
        fd = os.open(path, os.O_RDWR)
    except OSError:
        return
    try:
        st = os.fstat(fd)
        if st.st_ino != inode:
            return
        if st.st_mode & 0o077:
            # Made by nginx itself (a reload after the file was removed): 0644. Ours to fix.
            with contextlib.suppress(OSError):
                os.fchmod(fd, 0o600)
        if _libc.fallocate(fd, _FALLOC_FL_PUNCH_HOLE | _FALLOC_FL_KEEP_SIZE, 0, upto) == 0:
            return
        global _punching
        _punching = False
        err = ctypes.get_errno()
        log.warning("analytics: cannot punch a hole into %s (%s); truncating it when read to the end",
                    path, os.strerror(err))
        if os.fstat(fd).st_size == upto:
            os.ftruncate(fd, 0)
            AnalyticsCursor.objects.filter(name=CURSOR_NAME, inode=inode, offset=upto).update(offset=0)
    finally:
        os.close(fd)


def _aggregate(data: bytes, result: RollupResult) -> None:
    minutes: dict[tuple[bytes, int], list[int]] = {}
    visitors: dict[tuple[bytes, date, bytes], float] = {}
    days: dict[int, date] = {}
    bounds = [b / 1000 for b in LATENCY_BOUNDS_MS]   # request_time is in seconds
    for line in data.split(b"\n"):
        line = line.lstrip(b"\0")                   # a partly punched block reads as zeros
        if not line:
            continue
        result.lines += 1
        parts = line.split(b"\t")
        if len(parts) < 7:
            result.skipped += 1
            continue
        try:
            at = float(parts[0])
            status = int(parts[2])
            seconds = float(parts[3])
            sent = int(parts[4])
        except ValueError:
            result.skipped += 1
            continue
        label = parts[1].split(b".", 1)[0]
        minute = int(at // 60) * 60
        row = minutes.get((label, minute))
        if row is None:
            row = minutes[(label, minute)] = [0] * (COUNTERS + LATENCY_BUCKETS)
        row[REQUESTS] += 1
        kind = parts[5]
        if kind == b"page":
            row[PAGES] += 1
        elif kind == b"api":
            row[APIS] += 1
        if 400 <= status < 500:
            row[C4XX] += 1
        elif status >= 500:
            row[C5XX] += 1
        row[BYTES] += sent
        row[COUNTERS + bisect.bisect_left(bounds, seconds)] += 1
        day = days.get(minute)
        if day is None:
            day = days[minute] = datetime.fromtimestamp(minute, dt_timezone.utc).date()
        key = (label, day, parts[6])
        if visitors.get(key, 0.0) < at:
            visitors[key] = at
    labels = {label for label, _ in minutes}
    known = _space_ids(labels)
    for (label, _), row in minutes.items():
        if label in known:
            result.counted += row[REQUESTS]
        else:
            result.skipped += row[REQUESTS]
    _write_rollups(minutes, known)
    _write_visitors(visitors, known)


def _space_ids(labels: set[bytes]) -> dict[bytes, int]:
    names = [label.decode("ascii", "replace") for label in labels]
    return {label.encode(): pk for label, pk in Space.objects.filter(label__in=names).values_list("label", "pk")}


def _upsert(table: str, rows: list[tuple]) -> None:
    if not rows:
        return
    counters = ("requests", "page_views", "api_calls", "client_errors", "server_errors", "bytes_sent")
    sets = ", ".join(f"{c} = t.{c} + EXCLUDED.{c}" for c in counters)
    sql = (f"INSERT INTO {table} AS t (space_id, start, {', '.join(counters)}, latency) VALUES %s "
           f"ON CONFLICT (space_id, start) DO UPDATE SET {sets}, latency = ARRAY("
           "SELECT a + b FROM unnest(t.latency, EXCLUDED.latency) WITH ORDINALITY AS x(a, b, i) ORDER BY i)")
    with connection.cursor() as cur:
        execute_values(cur.cursor, sql, rows, page_size=1000)


def _write_rollups(minutes: dict[tuple[bytes, int], list[int]], known: dict[bytes, int]) -> None:
    hours: dict[tuple[int, int], list[int]] = {}
    minute_rows = []
    for (label, minute), row in minutes.items():
        space_id = known.get(label)
        if space_id is None:
            continue
        minute_rows.append(_row(space_id, minute, row))
        total = hours.setdefault((space_id, minute - minute % 3600), [0] * len(row))
        for i, value in enumerate(row):
            total[i] += value
    hour_rows = [_row(space_id, hour, row) for (space_id, hour), row in hours.items()]
    # In key order (cheap here): pages of the upsert touch neighbouring index entries.
    _upsert(AnalyticsMinute._meta.db_table, sorted(minute_rows, key=lambda r: (r[0], r[1])))
    _upsert(AnalyticsHour._meta.db_table, sorted(hour_rows, key=lambda r: (r[0], r[1])))


def _row(space_id: int, start: int, row: list[int]) -> tuple:
    return (space_id, datetime.fromtimestamp(start, dt_timezone.utc), *row[:COUNTERS], row[COUNTERS:])


def _write_visitors(visitors: dict[tuple[bytes, date, bytes], float], known: dict[bytes, int]) -> None:
    salts: dict[date, bytes | None] = {}
    hashed: dict[bytes, int] = {}
    rows: dict[tuple[int, date, int], float] = {}
    for (label, day, address), seen in visitors.items():
        space_id = known.get(label)
        if space_id is None:
            continue
        if day not in salts:
            salts[day] = _salt(day)
        salt = salts[day]
        if salt is None:
            continue                                # older than yesterday: its salt is gone
        cache_key = salt + address
        visitor = hashed.get(cache_key)
        if visitor is None:
            digest = hmac.new(salt, address, hashlib.sha256).digest()
            visitor = hashed[cache_key] = int.from_bytes(digest[:8], "big", signed=True)
        key = (space_id, day, visitor)
        if rows.get(key, 0.0) < seen:
            rows[key] = seen
    if not rows:
        return
    # COPY into a temporary table, then one upsert: a busy day has hundreds of thousands of
    # (space, visitor) pairs, and COPY skips the per-row SQL formatting of an INSERT.
    buf = io.StringIO()
    # Unsorted: rollups are serialized by the cursor's row lock, so no two lock rows in turn.
    for (space_id, day, visitor), seen in rows.items():
        buf.write(f"{space_id}\t{day.isoformat()}\t{visitor}\t{seen:.3f}\n")
    buf.seek(0)
    table = AnalyticsVisitor._meta.db_table
    with connection.cursor() as cur:
        cur.execute("CREATE TEMPORARY TABLE analytics_visitor_batch (space_id bigint, day date, visitor bigint, "
                    "seen double precision) ON COMMIT DROP")
        cur.cursor.copy_expert("COPY analytics_visitor_batch FROM STDIN", buf)
        cur.execute(f"INSERT INTO {table} AS t (space_id, day, visitor, last_seen) "
                    "SELECT space_id, day, visitor, to_timestamp(seen) FROM analytics_visitor_batch "
                    "ON CONFLICT (space_id, day, visitor) DO UPDATE SET last_seen = GREATEST(t.last_seen, EXCLUDED.last_seen)")
        cur.execute("DROP TABLE analytics_visitor_batch")


def _salt(day: date) -> bytes | None:
    """The day's salt (made on first use), or None for a day before yesterday (UTC)."""
    if day < timezone.now().date() - timedelta(days=1):
        return None
    row = AnalyticsSalt.objects.filter(day=day).first()
    if row is None:
        # Under the cursor's row lock: no other rollup makes one for the same day meanwhile.
        row = AnalyticsSalt.objects.create(day=day, salt=os.urandom(32))
    return bytes(row.salt)


# ----------------------------------------------------------------------------- bounded size
def prune(*, now: datetime | None = None, force: bool = False) -> dict[str, int]:
    """Delete rollups, visitor hashes and events past their retention, and salts of days
    before yesterday (the hashes of those days can then never be linked to an address)."""
    now = now or timezone.now()
    hour_cutoff = now - timedelta(days=settings.ANALYTICS_HOUR_DAYS)
    # Visitors, hours and events age by the hour: their scans run at most hourly.
    marker, _ = AnalyticsCursor.objects.get_or_create(name="prune")
    if not force and marker.offset and now.timestamp() - marker.offset < 3600:
        minutes = AnalyticsMinute.objects.filter(
            start__lt=now - timedelta(days=settings.ANALYTICS_MINUTE_DAYS)).delete()[0]
        return {"minutes": minutes}
    AnalyticsCursor.objects.filter(name="prune").update(offset=int(now.timestamp()))
    deleted = {
        "minutes": AnalyticsMinute.objects.filter(start__lt=now - timedelta(days=settings.ANALYTICS_MINUTE_DAYS)).delete()[0],
        "hours": AnalyticsHour.objects.filter(start__lt=hour_cutoff).delete()[0],
        "visitors": AnalyticsVisitor.objects.filter(day__lt=hour_cutoff.date()).delete()[0],
        "events": AnalyticsEvent.objects.filter(at__lt=hour_cutoff).delete()[0],
        "salts": AnalyticsSalt.objects.filter(day__lt=now.date() - timedelta(days=1)).delete()[0],
    }
    return deleted
