"""Where scene photos for batch export arrive, and where each batch's scene list is kept."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
from pydantic import Field

from scene_assets import settings


class SceneInbox(dg.ConfigurableResource):
    """A folder of scene photos to export recommendations for (watched by the inbox sensor)."""

    folder: str = Field(
        default="",
        description=f"Folder of scene images (jpg/png/webp, subfolders included). Empty: ${settings.ENV_SCENES_INBOX} "
        "or <data_dir>/scenes_inbox.",
    )
    manifests_dir: str = Field(default="", description="Where batch manifests go. Empty: <data_dir>/exports/batches.")

    def path(self) -> Path:
        import os

        configured = self.folder or os.environ.get(settings.ENV_SCENES_INBOX, "")
        return Path(configured).expanduser().resolve() if configured else settings.data_dir() / "scenes_inbox"

    def manifest_path(self, batch: str) -> Path:
        base = Path(self.manifests_dir) if self.manifests_dir else settings.data_dir() / "exports" / "batches"
        return base / f"{batch}.json"
