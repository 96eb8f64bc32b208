"""The keys package's own table: a new key's token held briefly for its show-once page."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from ..models import Model


class KeyReveal(Model):
    """A new key's token, held for a few minutes so that a double submit or a reload of its
    show-once page shows the same token again instead of losing it (keys/reveals.py).

    Never in plaintext: encrypted with a key derived from the app's secret and the create
    form's one-time nonce, which only the browser that posted it holds (the nonce itself is
    stored hashed). The ciphertext is wiped when the few minutes are up.
    """

    __tablename__ = "key_reveals"

    id: Mapped[int] = mapped_column(primary_key=True)
    nonce_hash: Mapped[str] = mapped_column(String(64), unique=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    api_key_id: Mapped[int] = mapped_column(ForeignKey("api_keys.id", ondelete="CASCADE"))
    ciphertext: Mapped[str | None] = mapped_column(String(400))
    expires_at: Mapped[datetime] = mapped_column(DateTime, index=True)
