"""Where the served recommendations and shopper feedback are (the HTTP server writes them)."""

from __future__ import annotations

import dagster as dg
from pydantic import Field

from scene_assets import feedback, settings


class FeedbackDatabase(dg.ConfigurableResource):
    """The database ``scene-matcher serve`` records recommendations and feedback events in
    (scene_assets.feedback); the pipeline only reads it."""

    url: str = Field(
        default="",
        description=f"SQLAlchemy URL (sqlite:///..., postgresql+psycopg2://...). Empty: ${feedback.ENV_FEEDBACK_DB_URL}, "
        "else the SQLite file under the data folder that the server writes by default.",
    )

    photos_dir: str = Field(
        default="",
        description="Folder of the scene photos the server archived (what retraining on feedback reads). Empty: "
        "the server's default, <data_dir>/feedback/scenes.",
    )

    def store(self) -> feedback.FeedbackStore:
        return feedback.FeedbackStore(self.url or feedback.configured_url(settings.data_dir()))

    def photos(self) -> feedback.ScenePhotoArchive:
        return feedback.ScenePhotoArchive(self.photos_dir or feedback.scene_photos_dir(settings.data_dir()))
