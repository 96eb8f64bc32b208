"""Saved funnels: listed, found, saved (created or edited) and deleted."""

from __future__ import annotations

import json
from collections.abc import Callable

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ...models import utcnow
from . import derivation
from .definition import FunnelDefinition
from .models import Funnel


class FunnelGone(LookupError):
    """The funnel was deleted meanwhile."""


class DuplicateName(ValueError):
    """Another funnel of the site has this name (whatever its case)."""


def name_taken(session: Session, site_id: int, name: str, funnel_id: int | None = None) -> bool:
    """Whether another funnel of the site (not `funnel_id`) has this name, ignoring case as
    the unique index ux_funnels_site_name does."""
    query = select(Funnel.id).where(
        Funnel.site_id == site_id, func.lower(Funnel.name) == func.lower(name)
    )
    if funnel_id is not None:
        query = query.where(Funnel.id != funnel_id)
    return session.scalar(query.limit(1)) is not None


def site_funnels(session: Session, site_id: int) -> list[Funnel]:
    """The site's saved funnels, by name."""
    return list(
        session.scalars(
            select(Funnel).where(Funnel.site_id == site_id).order_by(Funnel.name, Funnel.id)
        ).all()
    )


def site_funnel(session: Session, site_id: int, funnel_id: int) -> Funnel | None:
    """A saved funnel of the site; None when the site has no such funnel."""
    return session.scalar(select(Funnel).where(Funnel.id == funnel_id, Funnel.site_id == site_id))


def save(
    session: Session,
    site_id: int,
    name: str,
    definition: FunnelDefinition,
    funnel=None,
    also: Callable[[Session], object] | None = None,
) -> Funnel:
    """Create a saved funnel with its first derivation, or change one.

    New steps, a new window or mode retire the funnel's derivation and start another, so
    the funnel reports its new definition at once and never from the old rows. One small
    write: the old rows are purged afterwards (derivation.purge_retired).
    FunnelGone when the funnel was deleted meanwhile; DuplicateName when another funnel
    of the site has the name (checked first for a clear answer, and by the unique index
    for two saves at once). `also(session)` runs in the same
    transaction, just before the commit (the audit entry).
    """
    text = json.dumps(definition.as_json(), separators=(",", ":"))
    funnel_id = None if funnel is None else funnel.id
    session.rollback()  # begin the write inside the writers' lock
    with derivation.writers_lock(session):
        if name_taken(session, site_id, name, funnel_id):
            session.rollback()
            raise DuplicateName(name)
        try:
            saved = _write(session, site_id, name, text, funnel_id)
            if also is not None:
                also(session)
            session.commit()
        except IntegrityError:  # the index: another save took the name meanwhile
            session.rollback()
            raise DuplicateName(name) from None
    return saved


def _write(session: Session, site_id: int, name: str, text: str, funnel_id: int | None) -> Funnel:
    """Create or change the funnel row and its derivation (in the caller's transaction)."""
    days_tz = derivation.site_days_zone(session, site_id)
    if funnel_id is None:
        saved = Funnel(site_id=site_id, name=name, definition=text)
        session.add(saved)
        session.flush()
        derivation.start(session, saved.id, site_id, days_tz)
    else:
        locked = derivation.lock_funnel(session, funnel_id)
        if locked is None:
            session.rollback()
            raise FunnelGone(funnel_id)
        saved = locked
        if saved.definition != text:
            derivation.retire(session, funnel_id)
            derivation.start(session, funnel_id, saved.site_id, days_tz)
        saved.name, saved.definition, saved.updated_at = name, text, utcnow()
        session.flush()
    return saved


def delete_funnel(
    session: Session, funnel: Funnel, also: Callable[[Session], object] | None = None
) -> None:
    """Delete a saved funnel: one small write that retires its derivation (whose rows
    derivation.purge_retired deletes afterwards, in short batches); `also(session)` runs
    in the same transaction when the funnel was still there."""
    funnel_id = funnel.id
    session.rollback()  # begin the write inside the writers' lock
    with derivation.writers_lock(session):
        locked = derivation.lock_funnel(session, funnel_id)
        if locked is not None:
            derivation.retire(session, funnel_id)
            session.delete(locked)
            if also is not None:
                also(session)
        session.commit()
