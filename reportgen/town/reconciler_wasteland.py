"""reconcileWastelandClaims (spec §5.7): report a wasteland claim done once it merged.

A *claim* is every bead tagged with the same ``metadata.wasteland``
``(wasteland_id, item_id)``. It is reported once, on its canonical bead (the
convoy bead if any, else the oldest bead), when all its MRs are terminal, at
least one merged, and its convoy (if any) is closed. The local
``reported_done_at`` stamp is the idempotency gate: a claim any of whose
beads carries that key (even empty) is dropped in SQL (§17).
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass, field
from typing import Any

from reportgen.town.context import Action, TownCtx
from reportgen.town.reconciler_common import TERMINAL, json_object, report_wasteland_done

__all__ = ["Claim", "build_evidence", "claim_pr_evidence", "reconcile_wasteland_claims"]

_ORIGIN_KIND = "wanted-item-claim"
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):")
_SPECIAL_SCHEMES = frozenset({"http", "https", "ws", "wss", "ftp"})

_CLAIM_ROWS_SQL = """
    SELECT b.bead_id, b.type, b.status, b.title, b.metadata, b.created_at, rm.pr_url AS pr_url
    FROM beads b
    LEFT JOIN review_metadata rm ON rm.bead_id = b.bead_id
    WHERE json_extract(b.metadata, '$.wasteland.item_id') IS NOT NULL
      AND NOT EXISTS (
        SELECT 1 FROM beads other
        WHERE json_extract(other.metadata, '$.wasteland.wasteland_id')
              = json_extract(b.metadata, '$.wasteland.wasteland_id')
          AND json_extract(other.metadata, '$.wasteland.item_id')
              = json_extract(b.metadata, '$.wasteland.item_id')
          AND json_extract(other.metadata, '$.wasteland.reported_done_at') IS NOT NULL
      )
"""


@dataclass
class Claim:
    """One wasteland claim: its beads oldest first and the canonical bead's origin tag."""

    wasteland_id: str
    item_id: str
    beads: list[sqlite3.Row] = field(default_factory=list)
    canonical_bead_id: str = ""
    origin: dict[str, Any] = field(default_factory=dict)


def reconcile_wasteland_claims(ctx: TownCtx) -> list[Action]:
    """Emit ``report_wasteland_done`` for every claim whose status is *merged* (§5.7)."""
    actions: list[Action] = []
    for claim in _group_claims(ctx.all(_CLAIM_ROWS_SQL)):
        reported = claim.origin.get("reported_done_at")
        if isinstance(reported, str) and reported:
            continue
        prs = claim_pr_evidence(claim)
        if prs is None:
            continue
        title = claim.beads[0]["title"] if claim.beads else None
        fallback = title if title is not None else f"wasteland item {claim.item_id}"
        evidence = build_evidence(prs, fallback)
        actions.append(
            report_wasteland_done(
                claim.canonical_bead_id, claim.wasteland_id, claim.item_id, evidence
            )
        )
    return actions


def _read_origin(metadata: object) -> dict[str, Any] | None:
    """``readWastelandBeadOrigin``: the ``metadata.wasteland`` tag if it validates, else None.

    Mirrors upstream's schema: ``kind`` is ``wanted-item-claim``; ids are
    non-empty strings; optional fields are null or non-empty strings
    (``source_url`` a URL).
    """
    raw = json_object(metadata).get("wasteland")
    if not isinstance(raw, dict) or raw.get("kind") != _ORIGIN_KIND:
        return None
    for key in ("wasteland_id", "item_id"):
        if not isinstance(raw.get(key), str) or not raw[key]:
            return None
    for key in ("pull_id", "source_url", "reported_done_at", "reported_evidence"):
        value = raw.get(key)
        if value is not None and (not isinstance(value, str) or not value):
            return None
    url = raw.get("source_url")
    if url is not None and not _looks_like_url(url):
        return None
    return raw


def _looks_like_url(text: str) -> bool:
    """Roughly WHATWG ``new URL(text)`` succeeding: a scheme, and a host for special schemes."""
    match = _SCHEME.match(text)
    if match is None:
        return False
    if match.group(1).lower() in _SPECIAL_SCHEMES:
        return text[match.end() :].strip("/\\") != ""
    return True


def _group_claims(rows: list[sqlite3.Row]) -> list[Claim]:
    """Group by ``wasteland_id::item_id`` in first-seen order; sort each by ``created_at``."""
    groups: dict[str, list[sqlite3.Row]] = {}
    for row in rows:
        origin = _read_origin(row["metadata"])
        if origin is None:
            continue
        groups.setdefault(f"{origin['wasteland_id']}::{origin['item_id']}", []).append(row)
    claims: list[Claim] = []
    for group in groups.values():
        ordered = sorted(group, key=lambda r: r["created_at"])
        canonical = next((b for b in ordered if b["type"] == "convoy"), ordered[0])
        origin = _read_origin(canonical["metadata"])
        if origin is None:
            continue
        claims.append(
            Claim(
                wasteland_id=origin["wasteland_id"],
                item_id=origin["item_id"],
                beads=ordered,
                canonical_bead_id=canonical["bead_id"],
                origin=origin,
            )
        )
    return claims


def claim_pr_evidence(claim: Claim) -> list[tuple[str, str]] | None:
    """The merged PRs ``(url, title)`` of a *merged* claim; None while in flight or failed.

    In flight: no MR, an MR not terminal, or a convoy bead in the claim not
    closed. Failed: all MRs terminal, none closed. PR urls are de-duplicated.
    """
    mrs = [b for b in claim.beads if b["type"] == "merge_request"]
    if not mrs or any(mr["status"] not in TERMINAL for mr in mrs):
        return None
    merged = [mr for mr in mrs if mr["status"] == "closed"]
    if not merged:
        return None
    convoy = next((b for b in claim.beads if b["type"] == "convoy"), None)
    if convoy is not None and convoy["status"] != "closed":
        return None
    prs: list[tuple[str, str]] = []
    seen: set[str] = set()
    for mr in merged:
        url = mr["pr_url"]
        if not url or url in seen:
            continue
        seen.add(url)
        prs.append((url, mr["title"]))
    return prs


def build_evidence(prs: list[tuple[str, str]], fallback_title: str) -> str:
    """The evidence text sent upstream: a note, one PR, or a markdown list (§5.7)."""
    if not prs:
        return (
            f'Marked done by gastown auto-reporter for "{fallback_title}". '
            "No PR URLs were available on the merged review beads."
        )
    if len(prs) == 1:
        url, title = prs[0]
        return f"Implemented by {url} ({title})."
    lines = "\n".join(f"- {url} ({title})" for url, title in prs)
    return f"Implemented by:\n{lines}"
