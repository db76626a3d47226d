"""Sentry alerts: one event per invariant-violation *episode*, never one per tick.

Upstream sent ``Reconciler invariant #N violated: …`` to Sentry once per
violation per tick (every 5 s while a violation persists) from a Durable
Object that was probably never instrumented, so likely nothing arrived. Here
an episode (consecutive ticks where one invariant holds false for the same
entities; :mod:`reportgen.diagnose.episodes`) is reported once:

* live: :class:`LiveEpisodes` remembers open episodes in the database it is
  given (a file survives a restart) and reports one when it opens;
* batch (replay, build): :func:`report_episodes` reports each episode of a
  replayed window, with its first and last tick, tick count and permalink.

A build also reports each *new critical* finding of the towns' diagnoses
once (:func:`report_new_findings`), grouped in Sentry by the finding's id:
the same stuck bead is one issue however many nights it stays stuck.

Nothing is initialised unless ``SENTRY_DSN`` is set. The DSN is a secret: it
is never printed, logged or written anywhere by reportgen.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import sentry_sdk
from sentry_sdk.utils import BadDsn, Dsn

from reportgen import __version__
from reportgen.diagnose.episodes import (
    EntityKey,
    Episode,
    episode_id,
    subject_id,
    violation_key,
)
from reportgen.errors import BadInputError
from reportgen.town.invariants import find_invariant

DSN_ENV = "SENTRY_DSN"
ENVIRONMENT_ENV = "SENTRY_ENVIRONMENT"
FLUSH_TIMEOUT_S = 10.0


def message_for(invariant: int, message: str) -> str:
    """Upstream's Sentry message text."""
    return f"Reconciler invariant #{invariant} violated: {message}"


def fingerprint(town_id: str, invariant: int, entities: EntityKey) -> list[str]:
    """Group by invariant + town (+ the entity it names), not by message or tick.

    Invariant 3 names a rig, 4/5/6 a bead, 7 an agent: one Sentry issue per
    stuck thing, so a new stuck agent is a new issue but a persisting one is not.
    """
    found = find_invariant(invariant)
    subject = subject_id(invariant, entities)
    if found is not None:
        return found.fingerprint(town_id, subject)
    return ["reconciler-invariant", str(invariant), town_id]


@dataclass(frozen=True)
class EpisodeAlert:
    """What one Sentry event says about one episode."""

    town_id: str
    invariant: int
    message: str
    entities: EntityKey
    first_at: str
    last_at: str
    ticks: int
    episode_id: str
    permalink: str | None = None
    #: The entity the invariant names (groups the Sentry issue); ``entities`` when unset.
    subject: EntityKey | None = None
    #: The episode's page in the run that alerted (when the permalink is the stable one).
    run_page: str | None = None

    def context(self) -> dict[str, Any]:
        return {
            "invariant": self.invariant,
            "message": self.message,
            "town_id": self.town_id,
            "episode_id": self.episode_id,
            "first_tick": self.first_at,
            "last_tick": self.last_at,
            "tick_count": self.ticks,
            "agent_ids": list(self.entities.agent_ids),
            "bead_ids": list(self.entities.bead_ids),
            "rig_ids": list(self.entities.rig_ids),
            "permalink": self.permalink,
            "run_page": self.run_page,
        }


class SentryReporter:
    """Sends episode alerts through the real Sentry SDK (initialised here, once)."""

    def __init__(self, dsn: str, *, environment: str | None = None) -> None:
        sentry_sdk.init(
            dsn=dsn,
            release=f"reportgen@{__version__}",
            environment=environment or "production",
            default_integrations=False,
            traces_sample_rate=0.0,
        )
        self.sent = 0

    def send(self, alert: EpisodeAlert) -> None:
        with sentry_sdk.new_scope() as scope:
            scope.set_level("error")
            scope.set_tag("invariant", str(alert.invariant))
            scope.set_tag("town_id", alert.town_id)
            scope.set_context("violation", alert.context())
            scope.fingerprint = fingerprint(
                alert.town_id, alert.invariant, alert.subject or alert.entities
            )
            sentry_sdk.capture_message(message_for(alert.invariant, alert.message))
        self.sent += 1

    def send_finding(self, alert: FindingAlert) -> None:
        """One event for one finding, grouped by its id (:func:`finding_fingerprint`)."""
        with sentry_sdk.new_scope() as scope:
            scope.set_level("error")
            scope.set_tag("finding_kind", alert.kind)
            scope.set_tag("severity", alert.severity)
            scope.set_tag("town_id", alert.town_id)
            scope.set_context("finding", alert.context())
            scope.fingerprint = finding_fingerprint(alert.finding_id)
            sentry_sdk.capture_message(alert.message())
        self.sent += 1

    def flush(self, timeout: float = FLUSH_TIMEOUT_S) -> None:
        """Deliver what is queued; a batch command calls this before it exits."""
        sentry_sdk.flush(timeout=timeout)

    def close(self) -> None:
        sentry_sdk.get_client().close(timeout=FLUSH_TIMEOUT_S)


def reporter_from_env(environ: Mapping[str, str] | None = None) -> SentryReporter | None:
    """A reporter when ``SENTRY_DSN`` is set (and non-empty); otherwise ``None``, nothing initialised.

    A DSN that does not parse is bad input; the message never repeats the
    DSN (a secret), not even the part the SDK complains about.
    """
    env = os.environ if environ is None else environ
    dsn = env.get(DSN_ENV, "").strip()
    if not dsn:
        return None
    try:
        Dsn(dsn)
    except BadDsn as exc:
        raise BadInputError(
            f"{DSN_ENV} is not a valid Sentry DSN (expected https://KEY@HOST/PROJECT)"
        ) from exc
    return SentryReporter(dsn, environment=env.get(ENVIRONMENT_ENV) or None)


def alert_for(episode: Episode, permalink: str | None = None) -> EpisodeAlert:
    return EpisodeAlert(
        town_id=episode.town_id,
        invariant=episode.invariant,
        message=episode.messages[0] if episode.messages else "",
        entities=episode.entities,
        first_at=episode.first_at,
        last_at=episode.last_at,
        ticks=episode.ticks,
        episode_id=episode.id,
        permalink=permalink,
        subject=episode.subject,
    )


def alert_from_record(
    episode_id: str,
    record: Mapping[str, Any],
    permalink: str | None = None,
    run_page: str | None = None,
) -> EpisodeAlert:
    """An alert from a history record (``reportgen.report.history.episode_record``)."""
    entities = EntityKey(
        tuple(record.get("agent_ids", ())),
        tuple(record.get("bead_ids", ())),
        tuple(record.get("rig_ids", ())),
    )
    invariant = int(record["invariant"])
    subject_ids = set(record.get("subject_ids") or entities.all_ids())
    subject = EntityKey(
        tuple(i for i in entities.agent_ids if i in subject_ids),
        tuple(i for i in entities.bead_ids if i in subject_ids),
        tuple(i for i in entities.rig_ids if i in subject_ids),
    )
    return EpisodeAlert(
        town_id=str(record["town_id"]),
        invariant=invariant,
        message=str(record.get("message", "")),
        entities=entities,
        first_at=str(record["first_at"]),
        last_at=str(record["last_at"]),
        ticks=int(record.get("ticks", 0)),
        episode_id=episode_id,
        permalink=permalink,
        subject=subject,
        run_page=run_page,
    )


#: An episode's or finding's links by id: ``(permalink, run page)``, each possibly None.
Links = Callable[[str], tuple[str | None, str | None]]


def report_new_episodes(
    reporter: SentryReporter | None,
    records: Mapping[str, Mapping[str, Any]],
    links: Links = lambda eid: (None, None),
) -> int:
    """Batch (``build``): one event per *new* episode of a run; flushes; returns the count.

    Persisting episodes were reported by the run that first saw them.
    """
    if reporter is None:
        return 0
    for eid in sorted(records):
        reporter.send(alert_from_record(eid, records[eid], *links(eid)))
    reporter.flush()
    return len(records)


def finding_fingerprint(finding_id: str) -> list[str]:
    """Group by the finding's id (a hash of town, kind, subject and first time)."""
    return ["reconciler-finding", finding_id]


@dataclass(frozen=True)
class FindingAlert:
    """What one Sentry event says about one finding of a town's diagnosis."""

    finding_id: str
    town_id: str
    kind: str
    severity: str
    subject: Mapping[str, str]
    subject_name: str
    first_at: str
    last_at: str
    because: str
    replay_command: str
    permalink: str | None = None
    #: The finding's page in the run that alerted (when the permalink is the stable one).
    run_page: str | None = None

    def message(self) -> str:
        """``Reconciler finding dispatch-loop: <subject>: <because>``."""
        return f"Reconciler finding {self.kind}: {self.subject_name}: {self.because}"

    def context(self) -> dict[str, Any]:
        """The event's ``finding`` context: the finding's contract fields and its permalink."""
        return {
            "finding_id": self.finding_id,
            "town_id": self.town_id,
            "kind": self.kind,
            "severity": self.severity,
            "subject": dict(self.subject),
            "subject_name": self.subject_name,
            "first_at": self.first_at,
            "last_at": self.last_at,
            "because": self.because,
            "replay_command": self.replay_command,
            "permalink": self.permalink,
            "run_page": self.run_page,
        }


def finding_alert(
    finding_id: str,
    record: Mapping[str, Any],
    permalink: str | None = None,
    run_page: str | None = None,
) -> FindingAlert:
    """An alert from a finding's history record (its JSON contract and ``town_id``)."""
    subject = record.get("subject") or {}
    return FindingAlert(
        finding_id=finding_id,
        town_id=str(record.get("town_id", "")),
        kind=str(record["kind"]),
        severity=str(record["severity"]),
        subject={"kind": str(subject.get("kind", "")), "id": str(subject.get("id", ""))},
        subject_name=str(record.get("subject_name", "")),
        first_at=str(record["first_at"]),
        last_at=str(record["last_at"]),
        because=str(record.get("because", "")),
        replay_command=str(record.get("replay_command", "")),
        permalink=permalink,
        run_page=run_page,
    )


def report_new_findings(
    reporter: SentryReporter | None,
    records: Mapping[str, Mapping[str, Any]],
    links: Links = lambda fid: (None, None),
) -> int:
    """Batch (``build``): one event per new critical finding of a run; flushes; returns the count.

    ``records`` are already the new critical ones; persisting findings were
    reported by the run that first saw them.
    """
    if reporter is None:
        return 0
    for fid in sorted(records):
        reporter.send_finding(finding_alert(fid, records[fid], *links(fid)))
    reporter.flush()
    return len(records)


def report_episodes(
    reporter: SentryReporter | None,
    episodes: Iterable[Episode],
    permalink: Callable[[Episode], str | None] = lambda e: None,
) -> int:
    """Batch: one event per episode (replay, build); flushes; returns how many were sent."""
    if reporter is None:
        return 0
    count = 0
    for episode in episodes:
        reporter.send(alert_for(episode, permalink(episode)))
        count += 1
    reporter.flush()
    return count


# --------------------------------------------------------------------------- live

OPEN_EPISODES_DDL = """
CREATE TABLE IF NOT EXISTS rg_open_episodes (
  town_id text not null,
  invariant integer not null,
  entities text not null,
  episode_id text not null,
  first_at text not null,
  last_at text not null,
  ticks integer not null,
  primary key (town_id, invariant, entities)
)
"""


class LiveEpisodes:
    """Tracks open episodes across live ticks; reports each one once, when it opens.

    The open set lives in ``rg_open_episodes`` (keyed by town) of the
    connection it is given: on a database file, a restarted process does not
    re-alert an episode that was already reported. ``reportgen simulate``
    gives it an in-memory database, because a simulation always starts from
    an empty town: nothing of an earlier run goes on. One tracker can follow
    many towns.
    """

    def __init__(self, conn: sqlite3.Connection, reporter: SentryReporter | None) -> None:
        conn.execute(OPEN_EPISODES_DDL)
        self.conn = conn
        self.reporter = reporter

    def after_tick(self, town_id: str, record: dict[str, Any]) -> None:
        """:class:`reportgen.town.api.TickObserver`: follow one recorded tick."""
        self.observe(town_id, str(record["at"]), list(record["violations"]))

    def observe(self, town_id: str, at: str, violations: list[dict[str, Any]]) -> list[str]:
        """Update the open set with one tick's violations; return ids of episodes opened now."""
        seen: dict[tuple[int, str], tuple[EntityKey, str]] = {}
        for v in violations:
            invariant, subject = violation_key(v)
            entry = (invariant, json.dumps(subject.all_ids()))
            if entry not in seen:
                seen[entry] = (subject, str(v["message"]))
        open_now = {
            (r[0], r[1]): r[2]
            for r in self.conn.execute(
                "SELECT invariant, entities, episode_id FROM rg_open_episodes WHERE town_id = ?",
                (town_id,),
            )
        }
        for gone in sorted(set(open_now) - set(seen)):
            self.conn.execute(
                "DELETE FROM rg_open_episodes WHERE town_id = ? AND invariant = ? AND entities = ?",
                (town_id, *gone),
            )
        opened: list[str] = []
        for (invariant, entities_text), (key, message) in sorted(seen.items()):
            if (invariant, entities_text) in open_now:
                self.conn.execute(
                    "UPDATE rg_open_episodes SET last_at = ?, ticks = ticks + 1 "
                    "WHERE town_id = ? AND invariant = ? AND entities = ?",
                    (at, town_id, invariant, entities_text),
                )
                continue
            eid = episode_id(town_id, invariant, key, at)
            self.conn.execute(
                "INSERT INTO rg_open_episodes VALUES (?, ?, ?, ?, ?, ?, 1)",
                (town_id, invariant, entities_text, eid, at, at),
            )
            opened.append(eid)
            if self.reporter is not None:
                self.reporter.send(EpisodeAlert(town_id, invariant, message, key, at, at, 1, eid))
        return opened
