"""Segments and programs of a running service, from its settings: `open_lifecycle` loads
`segments/`, `programs/`, `templates/` and `content.yaml` from the lifecycle folder and builds
the segment keeper and the scheduler (both optional: a folder that is missing holds none)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from leadscore.programs.content import load_content
from leadscore.programs.definition import Program, load_programs
from leadscore.programs.mailing import Mailer
from leadscore.programs.scheduler import Scheduler, lifecycle_folder
from leadscore.segments.definition import Segment, load_segments
from leadscore.segments.live import SegmentKeeper

if TYPE_CHECKING:
    from leadscore.service import Service


@dataclass
class Lifecycle:
    segments: list[Segment]
    programs: list[Program]
    keeper: SegmentKeeper
    scheduler: Scheduler
    secret: str | None              # `link_secret`; None: no tracked e-mail, no link works

    def run_once(self, now: int | None = None) -> int:
        """One round: memberships, enrolments, due steps, deliveries."""
        self.keeper.refresh(now)
        return self.scheduler.run_once(now)


def link_secret(settings: Any) -> str | None:
    """The configured `link_secret`, or None: never a key derived from something public or
    stored beside it (the admin token's hash is in `leadscore.toml`)."""
    return str(settings.link_secret) if getattr(settings, "link_secret", None) else None


def open_lifecycle(service: Service, settings: Any, *, folder: str | Path | None = None
                   ) -> Lifecycle:
    root = Path(folder) if folder is not None else lifecycle_folder(settings)
    segments = load_segments([root / "segments"]) if (root / "segments").is_dir() else []
    programs = load_programs([root / "programs"], templates=root / "templates") \
        if (root / "programs").is_dir() else []
    content = load_content(root / "content.yaml") if (root / "content.yaml").is_file() else []
    public = getattr(settings, "public_url", None) or \
        f"http://{settings.host}:{settings.port}"
    secret = link_secret(settings)
    mailer = Mailer(settings.smtp_url, settings.smtp_from, public, secret,
                    settings.delivery_timeout_seconds)
    scheduler = Scheduler(service, programs, content=content, mailer=mailer,
                          emails_per_week=getattr(settings, "emails_per_week", 3),
                          lease_seconds=getattr(settings, "delivery_lease_seconds", 60.0),
                          max_attempts=getattr(settings, "delivery_max_attempts", 10),
                          emails_per_hour=getattr(settings, "emails_per_address_per_hour", 2),
                          email_rate=getattr(settings, "email_rate_per_second", 10.0),
                          double_opt_in=getattr(settings, "double_opt_in", False),
                          enrol_max_age_hours=getattr(settings, "enrol_max_age_hours", 24.0))
    keeper = SegmentKeeper(service, segments, on_change=scheduler.on_segment_change)
    return Lifecycle(segments, programs, keeper, scheduler, secret)
