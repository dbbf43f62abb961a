"""Low disk space is a state of its own: uploads are refused with a sentence (507) while the
data folder's volume has less than MIN_FREE_DISK_MB free beyond the largest upload, before
the disk is full, so that Postgres (whose embedded server keeps its files there) and the
upload's own temporary file still have room, and deletes keep working.

The volume checked is DATA_DIR's: the embedded Postgres and Redis, and uploads on their way,
live there. An external Postgres's volume is its own operator's to watch."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from core.errors import InsufficientStorage
from core.settings import Settings

MB = 1024 * 1024


@dataclass(frozen=True)
class DiskSpace:
    free_bytes: int
    needed_bytes: int  # free space below which uploads are refused

    @property
    def low(self) -> bool:
        return self.free_bytes < self.needed_bytes

    def sentence(self) -> str:
        return (
            f"the server is low on disk space ({self.free_bytes // MB} MB free, "
            f"{self.needed_bytes // MB} MB needed to take an upload): uploads are refused "
            "until space is freed; deleting documents frees theirs"
        )


def disk_space(settings: Settings) -> DiskSpace:
    """The free space of DATA_DIR's volume, and what an upload needs of it."""
    folder = Path(settings.data_dir).resolve()
    while not folder.exists():  # not made yet: the volume it will be made on
        folder = folder.parent
    needed = (settings.min_free_disk_mb + settings.max_upload_mb) * MB
    return DiskSpace(shutil.disk_usage(folder).free, needed if settings.min_free_disk_mb else 0)


def require_room_for_upload(settings: Settings) -> None:
    """Raise InsufficientStorage (507) when an upload could fill the disk."""
    space = disk_space(settings)
    if space.low:
        raise InsufficientStorage(space.sentence())
