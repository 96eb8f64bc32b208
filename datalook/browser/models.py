"""The browser package's own table: requests dropped as bots, counted per day."""

from __future__ import annotations

from datetime import date

from sqlalchemy import Date, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from ..models import Model


class BotRequests(Model):
    """Browser requests dropped as bots, per site, UTC day and bot name (e.g. HeadlessChrome),
    counted in memory by each worker and written in batches (browser/bot_counts.py)."""

    __tablename__ = "bot_requests"

    site_id: Mapped[int] = mapped_column(
        ForeignKey("sites.id", ondelete="CASCADE"), primary_key=True
    )
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    bot: Mapped[str] = mapped_column(String(64), primary_key=True)
    requests: Mapped[int] = mapped_column(Integer, default=0)
