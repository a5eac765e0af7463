"""The recommendation log's upkeep, a step of the daily job (`adaptrec train --all`) and of
`adaptrec db log-retention`: create the month partitions ahead of time (migration 009), and drop
the months older than ADAPTREC_LOG_RETENTION_DAYS in one statement each, instead of deleting rows.

The log is what was answered (for calibration, experiments and analysts), not what learners did:
interactions are never dropped. Only whole months go: a month is dropped once its last day is
older than the retention, so up to a month more than the retention is kept.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING

from app.infra import queries as q

if TYPE_CHECKING:
    from psycopg2.extensions import connection as Connection

MONTHS_AHEAD = 3               # partitions ready before their month begins


@dataclass
class RetentionReport:
    ready: list[str] = field(default_factory=list)     # the partitions from this month on
    dropped: list[str] = field(default_factory=list)
    cutoff: datetime | None = None


def month_starts(today: date, ahead: int = MONTHS_AHEAD) -> list[date]:
    first, out = today.replace(day=1), []
    for _ in range(ahead + 1):
        out.append(first)
        first = (first + timedelta(days=32)).replace(day=1)
    return out


def run(conn: Connection, days: int, now: datetime | None = None) -> RetentionReport:
    """Create this month's and the next MONTHS_AHEAD months' partitions; with days > 0 drop the
    months that ended more than `days` days before `now`. Commits."""
    now = now or datetime.now(UTC)
    report = RetentionReport()
    with conn:
        for month in month_starts(now.date()):
            report.ready.append(q.fetch_one(conn, "log_add_month", month=month)["partition"])
        if days > 0:
            report.cutoff = now - timedelta(days=days)
            report.dropped = [r["partition"] for r in q.fetch_all(conn, "log_drop_before", cutoff=report.cutoff)]
    return report
