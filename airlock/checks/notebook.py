"""A notebook's own ACRO report, submitted beside the table it describes."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from airlock.checks.base import MAX_COMPANION_BYTES


@dataclass(frozen=True)
class Notebook:
    report: str
    uid: str
    status: str
    summary: str
    protection: str
    tool: str
    verified: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "recognised": True,
            "report": self.report,
            "output": self.uid,
            "status": self.status,
            "summary": self.summary,
            "protection": self.protection,
            "tool": self.tool,
            "checksum_verified": self.verified,
        }


def find_notebook(name: str, data: bytes, companions: Mapping[str, bytes]) -> Notebook | None:
    """The companion ACRO report that describes this file, if any."""
    digest = hashlib.sha256(data).hexdigest()
    verified_names = {
        cname.rsplit("/", 1)[-1][:-4].casefold()
        for cname, body in companions.items()
        if cname.lower().endswith(".txt")
        and len(body) < 200
        and body.strip().decode("ascii", errors="replace").lower() == digest
    }
    wanted = {name.casefold()} | verified_names
    for cname, body in sorted(companions.items()):
        if not cname.lower().endswith(".json") or len(body) > MAX_COMPANION_BYTES:
            continue
        try:
            doc = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            continue
        results = doc.get("results") if isinstance(doc, dict) else None
        if not isinstance(results, dict):
            continue
        for uid, entry in results.items():
            if not isinstance(entry, dict):
                continue
            files = entry.get("files") or []
            names = {
                str(f.get("name", "")).rsplit("/", 1)[-1].casefold()
                for f in files
                if isinstance(f, dict)
            }
            hit = names & wanted
            if not hit:
                continue
            status = str(entry.get("status", "review"))
            props = entry.get("properties")
            props = props if isinstance(props, dict) else {}
            about = doc.get("tool")
            tool = about.get("name", "ACRO") if isinstance(about, dict) else "ACRO"
            return Notebook(
                report=cname,
                uid=str(uid),
                status=status if status in ("pass", "fail", "review") else "review",
                summary=str(entry.get("summary", "")),
                protection=str(props.get("protection", "none")),
                tool=str(tool),
                verified=bool(hit & verified_names),
            )
    return None
