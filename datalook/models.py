"""SQLAlchemy models: accounts, sites, API keys, events and what is derived from them.

Timestamps are naive UTC everywhere (`utcnow()`), so SQLite and PostgreSQL agree.

Plain SQLAlchemy 2 (no Flask): the ingestion API uses these models without Flask, and
extensions.py hands `Base` to Flask-SQLAlchemy (`SQLAlchemy(model_class=Base)`), whose
`db.session`, `db.metadata` and migrations then serve the same tables.
"""

from __future__ import annotations

import secrets
from datetime import UTC, date, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    and_,
    false,
    or_,
    text,
)
from sqlalchemy import inspect as inspect_state
from sqlalchemy.ext.hybrid import hybrid_method
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.sql.elements import ColumnElement

from .accounts.passwords import check_password, hash_password


class Base(DeclarativeBase):
    """Declarative base of all models (Flask-SQLAlchemy's db.Model shares its metadata)."""

    def __repr__(self) -> str:
        """`<User 3>`, or `<User (pending …)>` before a flush (as Flask-SQLAlchemy's models)."""
        state = inspect_state(self)
        if state.transient:
            pk = f"(transient {id(self)})"
        elif state.pending:
            pk = f"(pending {id(self)})"
        else:
            pk = ", ".join(map(str, state.identity or ()))
        return f"<{type(self).__name__} {pk}>"


# The name the models (here and in analytics/) are declared on.
Model = Base

# SQLite only auto-increments INTEGER PRIMARY KEY; PostgreSQL gets a real BIGINT.
BigId = BigInteger().with_variant(Integer(), "sqlite")


def utcnow() -> datetime:
    """Return the current time as naive UTC (the storage convention)."""
    return datetime.now(UTC).replace(tzinfo=None)


def new_site_key() -> str:
    """Return a fresh public site key for the browser SDK (not a secret: pages show it)."""
    return f"dls_{secrets.token_urlsafe(18)}"


KEY_KIND_LIVE = "live"
KEY_KIND_TEST = "test"
# A read key (dl_read_…) reads one site's reports through the Stats API; it sends no events.
KEY_KIND_READ = "read"


class User(Model):
    """A person who owns sites; logs in with email and password.

    Also what Flask-Login asks of a user (what its UserMixin gives, written here so that the
    models need no Flask): every stored user is active; two users are equal when their ids
    are; the id as text is what the session cookie keeps.
    """

    __tablename__ = "users"
    __hash__ = object.__hash__  # defining __eq__ would otherwise make users unhashable

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    sites: Mapped[list[Site]] = relationship(back_populates="owner", order_by="Site.domain")

    @property
    def is_active(self) -> bool:
        """Flask-Login: whether the user may log in (every account may)."""
        return True

    @property
    def is_authenticated(self) -> bool:
        """Flask-Login: a real user (not the anonymous one) is authenticated when active."""
        return self.is_active

    @property
    def is_anonymous(self) -> bool:
        """Flask-Login: a stored user is never the anonymous user."""
        return False

    def get_id(self) -> str:
        """Flask-Login: the id kept in the session (loaded back by app.py's user loader)."""
        return str(self.id)

    def __eq__(self, other: object) -> bool:
        """Users are equal when their ids are (as with Flask-Login's UserMixin)."""
        if isinstance(other, User):
            return self.get_id() == other.get_id()
        return NotImplemented

    @staticmethod
    def normalise_email(email: str) -> str:
        """Return the canonical form used for uniqueness and log-in."""
        return email.strip().lower()

    def set_password(self, password: str) -> None:
        """Store a bcrypt hash of the password (any length: see passwords.py)."""
        self.password_hash = hash_password(password)

    def check_password(self, password: str) -> bool:
        """Check a password against the stored bcrypt hash."""
        return check_password(password, self.password_hash)


class Site(Model):
    """A website or app whose events DataLook collects."""

    __tablename__ = "sites"
    __table_args__ = (
        UniqueConstraint("owner_id", "domain"),
        UniqueConstraint("site_key", name="uq_sites_site_key"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    domain: Mapped[str] = mapped_column(String(253))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    # Bumped by every key creation: the UPDATE takes a row lock (a write lock on SQLite)
    # that serialises concurrent creations, so the 10-key cap cannot be raced past.
    key_serial: Mapped[int] = mapped_column(Integer, default=0)
    # How reports cut days (IANA name) and format money (ISO 4217); events are unaffected.
    timezone: Mapped[str] = mapped_column(String(64), default="UTC", server_default="UTC")
    currency: Mapped[str] = mapped_column(String(3), default="USD", server_default="USD")
    # The browser SDK: a public key that can only write this site's events from web pages
    # (regenerating it revokes the old one), the extra origins allowed to send them (JSON
    # list; the domain itself is always allowed), and whether DNT/GPC browsers are skipped.
    site_key: Mapped[str | None] = mapped_column(String(32), default=new_site_key)
    allowed_origins: Mapped[str | None] = mapped_column(Text)
    respect_dnt: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # VISITOR_IDS: "cookieless" (the day's hash, no storage in the browser) or, chosen by the
    # owner, "persistent" (a random first-party id the script keeps; it needs consent).
    visitor_ids: Mapped[str] = mapped_column(
        String(12), default="cookieless", server_default="cookieless"
    )
    # The first browser pageview, written once by /collect: the quest's wait reads only this.
    first_pageview_at: Mapped[datetime | None] = mapped_column(DateTime)
    first_pageview_path: Mapped[str | None] = mapped_column(String(2048))

    owner: Mapped[User] = relationship(back_populates="sites")
    api_keys: Mapped[list[ApiKey]] = relationship(back_populates="site", order_by="ApiKey.id")


#: A site's modes of browser visitor ids, the default first.
VISITOR_IDS = ("cookieless", "persistent")


class ApiKey(Model):
    """A server-side API key; only the SHA-256 of its secret is stored."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"), index=True)
    key_id: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(64))
    secret_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime)
    # Set when the key was rotated with a grace period: it works until then.
    expires_at: Mapped[datetime | None] = mapped_column(DateTime)
    # flask-limiter syntax, e.g. "2000 per 10 seconds"; None means the configured default.
    rate_limit: Mapped[str | None] = mapped_column(String(64))
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime)
    # Set on rotation: the key that took this one's place (the keys page links the two).
    replaced_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("api_keys.id", ondelete="SET NULL")
    )
    # "live" (dl_live_…) or "test" (dl_test_…): test keys' events are stored with is_test set.
    # "read" (dl_read_…): reads the site's reports (the Stats API), never sends events.
    kind: Mapped[str] = mapped_column(String(8), default="live", server_default="live")

    site: Mapped[Site] = relationship(back_populates="api_keys")
    created_by: Mapped[User | None] = relationship(foreign_keys=[created_by_id])
    replaced_by: Mapped[ApiKey | None] = relationship(
        remote_side=[id], foreign_keys=[replaced_by_id]
    )

    # The rule of being active, owned here: `key.active_at(now)` on a loaded key and
    # `ApiKey.active_at(now)` in a query (and in the /event look-up) are the same rule,
    # written side by side (tests/test_keys.py checks that they agree case by case).
    @hybrid_method
    def active_at(self, now: datetime) -> bool:
        """Whether the key authenticates requests at `now`: not revoked, not past expiry."""
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)

    @active_at.inplace.expression  # type: ignore[attr-defined]
    @classmethod
    def _active_at_expression(cls, now: datetime | ColumnElement) -> ColumnElement[bool]:
        """The same rule as SQL, for filters and for the database-side look-up."""
        return and_(cls.revoked_at.is_(None), or_(cls.expires_at.is_(None), cls.expires_at > now))

    @property
    def is_test(self) -> bool:
        """Whether this is a test key, whose events no report counts."""
        return self.kind == KEY_KIND_TEST

    @property
    def is_read(self) -> bool:
        """Whether this is a read key (the Stats API), which sends no events."""
        return self.kind == KEY_KIND_READ

    def is_active(self, now: datetime | None = None) -> bool:
        """Whether the key authenticates requests now (or at `now`)."""
        return self.active_at(now or utcnow())

    def status(self, now: datetime | None = None) -> str:
        """Describe the key's state for people: active, expires at …, expired, revoked."""
        now = now or utcnow()
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None:
            if self.expires_at <= now:
                return "expired"
            return f"expires {self.expires_at:%Y-%m-%d %H:%M} UTC"
        return "active"


class SharedLink(Model):
    """A read-only dashboard of one site at /share/<token>, for people without an account.

    Only the SHA-256 of the token is stored (like a key's secret, it carries far more entropy
    than a password); the optional password is kept as a bcrypt hash.
    """

    __tablename__ = "shared_links"

    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(64))
    password_hash: Mapped[str | None] = mapped_column(String(100))
    # Space-separated origins allowed to embed the link in an iframe (CSP frame-ancestors);
    # None: no framing at all.
    frame_ancestors: Mapped[str | None] = mapped_column(String(1000))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime)

    site: Mapped[Site] = relationship()
    created_by: Mapped[User | None] = relationship()


#: The acquisition columns of events and their lengths (values are cut to fit at ingestion).
ACQUISITION_LENGTHS = {
    "source": 100,
    "channel": 20,
    "medium": 100,
    "campaign": 100,
    "term": 100,
    "content": 100,
    "referrer": 500,
    "device": 10,
    "browser": 50,
    "browser_version": 20,
    "os": 50,
    "os_version": 20,
    "country": 2,
    # Only with a GEOIP_DATABASE (acquisition.geo); NULL ("(not recorded)") without one.
    "region": 100,
    "city": 100,
}


class Event(Model):
    """One stored event. Values are exact: `success_value_micros` is value × 10⁶."""

    __tablename__ = "events"
    __table_args__ = (
        # Retries with the same event_id are duplicates. Partial: most events carry no
        # event_id, and an index entry they can never collide on cost a page write each.
        # Browsers and servers have an id space each: anyone can send a browser event (the
        # site key is public), so a browser's id must never make a server event a duplicate.
        Index(
            "uq_events_site_event_id",
            "site_id",
            "event_id",
            "from_browser",
            unique=True,
            sqlite_where=text("event_id IS NOT NULL"),
            postgresql_where=text("event_id IS NOT NULL"),
        ),
        Index("ix_events_site_occurred", "site_id", "occurred_at"),
        Index("ix_events_key", "api_key_id", "id"),
        # A link finds the events of its anonymous id (partial: server events have none).
        Index(
            "ix_events_site_anonymous",
            "site_id",
            "anonymous_id",
            sqlite_where=text("anonymous_id IS NOT NULL"),
            postgresql_where=text("anonymous_id IS NOT NULL"),
        ),
        # The live view reads a site's newest events by id.
        Index("ix_events_site_id", "site_id", "id"),
        # Partial: live events (nearly all) write no entry; "Clear test events" finds its own.
        Index(
            "ix_events_site_test",
            "site_id",
            "id",
            sqlite_where=text("is_test"),
            postgresql_where=text("is_test"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"))
    api_key_id: Mapped[int | None] = mapped_column(ForeignKey("api_keys.id", ondelete="SET NULL"))
    event_name: Mapped[str] = mapped_column(String(16))
    name: Mapped[str | None] = mapped_column(String(100))
    page_path: Mapped[str] = mapped_column(String(2048))
    # success_user_id when given, else a per-event anonymous id: COUNT(DISTINCT visitor_id).
    visitor_id: Mapped[str] = mapped_column(String(260))
    success_user_id: Mapped[str | None] = mapped_column(String(256))
    success_value_micros: Mapped[int | None] = mapped_column(BigInteger)
    properties: Mapped[str | None] = mapped_column(Text)  # JSON object, PII keys removed
    stripped_keys: Mapped[str | None] = mapped_column(Text)  # JSON list of removed key names
    event_id: Mapped[str | None] = mapped_column(String(64))
    occurred_at: Mapped[datetime] = mapped_column(DateTime)
    received_at: Mapped[datetime] = mapped_column(DateTime)
    # Sent with a test key: stored and shown live, never counted (reports filter is_test = false).
    is_test: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    # Sent by a browser (POST /collect, no API key): its event_id is in the browsers' space.
    from_browser: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # Where the visitor came from and on what, derived once at ingestion (ingest/arrivals.py)
    # from what the event carried; the address and User-Agent themselves are never stored.
    # NULL: stored before these columns existed ("(not recorded)"); "": the event has no
    # such value ("(none)").
    source: Mapped[str | None] = mapped_column(String(ACQUISITION_LENGTHS["source"]))
    channel: Mapped[str | None] = mapped_column(String(ACQUISITION_LENGTHS["channel"]))
    medium: Mapped[str | None] = mapped_column(String(ACQUISITION_LENGTHS["medium"]))
    campaign: Mapped[str | None] = mapped_column(String(ACQUISITION_LENGTHS["campaign"]))
    term: Mapped[str | None] = mapped_column(String(ACQUISITION_LENGTHS["term"]))
    content: Mapped[str | None] = mapped_column(String(ACQUISITION_LENGTHS["content"]))
    referrer: Mapped[str | None] = mapped_column(String(ACQUISITION_LENGTHS["referrer"]))
    device: Mapped[str | None] = mapped_column(String(ACQUISITION_LENGTHS["device"]))
    browser: Mapped[str | None] = mapped_column(String(ACQUISITION_LENGTHS["browser"]))
    browser_version: Mapped[str | None] = mapped_column(
        String(ACQUISITION_LENGTHS["browser_version"])
    )
    os: Mapped[str | None] = mapped_column(String(ACQUISITION_LENGTHS["os"]))
    os_version: Mapped[str | None] = mapped_column(String(ACQUISITION_LENGTHS["os_version"]))
    country: Mapped[str | None] = mapped_column(String(ACQUISITION_LENGTHS["country"]))
    region: Mapped[str | None] = mapped_column(String(ACQUISITION_LENGTHS["region"]))
    city: Mapped[str | None] = mapped_column(String(ACQUISITION_LENGTHS["city"]))
    # A browser event's anonymous id (the day's cookieless `c:` id, or a persistent `p:`
    # one), stored also when the event was identified: a link (VisitorLink) of this id to
    # a user makes its anonymous events count as that user. NULL on server events.
    anonymous_id: Mapped[str | None] = mapped_column(String(64))

    @classmethod
    def counted(cls) -> ColumnElement[bool]:
        """SQL: the event counts in reports (a test key's events never do)."""
        return cls.is_test.is_(False)


# Who registered a success rule's name, in rising order of trust: only test keys, a browser
# (POST /collect, which anyone can send to), a backend's live key. A name belongs to the
# most trusted sender that has used it; each kind has a cap of its own (ingest/storage.py).
RULE_FROM_TEST = "test"
RULE_FROM_BROWSER = "browser"
RULE_FROM_SERVER = "server"
RULE_ORIGINS = (RULE_FROM_TEST, RULE_FROM_BROWSER, RULE_FROM_SERVER)


class SuccessRule(Model):
    """A success rule, registered by the first success event that carries its name."""

    __tablename__ = "success_rules"
    __table_args__ = (UniqueConstraint("site_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    first_seen_at: Mapped[datetime] = mapped_column(DateTime)
    # One of RULE_ORIGINS; a live event of a test-only name makes it a browser's or server's.
    origin: Mapped[str] = mapped_column(
        String(8), default=RULE_FROM_SERVER, server_default=RULE_FROM_SERVER
    )

    @classmethod
    def listed(cls) -> ColumnElement[bool]:
        """SQL: the rule is listed in reports (a name sent only with test keys never is)."""
        return cls.origin != RULE_FROM_TEST


class VisitorSalt(Model):
    """The secret salt of one UTC day for cookieless browser visitor ids (kept two days)."""

    __tablename__ = "visitor_salts"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    salt: Mapped[str] = mapped_column(String(64))


# Who made a link of an anonymous id to a user: a browser (an identified event from it, or
# identify()), or a backend's live key (a server event whose context named the visitor's
# address and User-Agent). A server's link overrides a browser's; a browser's never does.
LINK_FROM_BROWSER = "browser"
LINK_FROM_SERVER = "server"


class VisitorLink(Model):
    """An anonymous browser id joined to a user: the id's anonymous events count as
    `u:<user_id>` in every report (analytics/identity.py applies it to the events)."""

    __tablename__ = "visitor_links"
    __table_args__ = (
        Index("ix_visitor_links_user", "site_id", "user_id"),
        # Links not yet applied to the events: the fold process finds them by this.
        Index(
            "ix_visitor_links_pending",
            "created_at",
            sqlite_where=text("pending"),
            postgresql_where=text("pending"),
        ),
    )

    site_id: Mapped[int] = mapped_column(
        ForeignKey("sites.id", ondelete="CASCADE"), primary_key=True
    )
    # A `c:` id holds its day's salt, so it names one browser on one day only.
    anonymous_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(256))
    origin: Mapped[str] = mapped_column(String(8))  # LINK_FROM_BROWSER or LINK_FROM_SERVER
    day: Mapped[date] = mapped_column(Date)  # the UTC day the id was seen linked
    created_at: Mapped[datetime] = mapped_column(DateTime)
    # Made or changed since the events were last rewritten to follow it.
    pending: Mapped[bool] = mapped_column(Boolean, default=True, server_default=text("true"))


class KeyUsage(Model):
    """Requests per key per hour, flushed in batches from the workers' counters."""

    __tablename__ = "key_usage"

    api_key_id: Mapped[int] = mapped_column(
        ForeignKey("api_keys.id", ondelete="CASCADE"), primary_key=True
    )
    hour: Mapped[datetime] = mapped_column(DateTime, primary_key=True)
    requests: Mapped[int] = mapped_column(Integer, default=0)


class RefusedRequest(Model):
    """A refused API request whose key could be identified, kept for the live debugger.

    Also duplicates (accepted, not stored again), with status 204 and code "duplicate".
    Never the secret: the key is its row; the excerpt has PII keys and tokens removed.
    Bounded per site (refusals.py prunes to the newest 1,000 and 7 days).
    """

    __tablename__ = "refused_requests"
    __table_args__ = (
        Index("ix_refused_site_id", "site_id", "id"),
        Index("ix_refused_key_id", "api_key_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"))
    api_key_id: Mapped[int | None] = mapped_column(ForeignKey("api_keys.id", ondelete="CASCADE"))
    received_at: Mapped[datetime] = mapped_column(DateTime)
    status: Mapped[int] = mapped_column(Integer)
    code: Mapped[str] = mapped_column(String(64))  # the envelope's code, e.g. invalid_request
    message: Mapped[str] = mapped_column(String(300))
    errors: Mapped[str | None] = mapped_column(Text)  # JSON list of {field, code, message}
    excerpt: Mapped[str | None] = mapped_column(String(600))
    # How many refusals of the same key were not recorded one by one just before this one.
    suppressed: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    is_test: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))


#: A member's role on a site, weakest first (accounts/access.py ranks them in this order).
ROLE_VIEWER = "viewer"
ROLE_ADMIN = "admin"
ROLE_OWNER = "owner"
ROLES = (ROLE_VIEWER, ROLE_ADMIN, ROLE_OWNER)


class SiteMember(Model):
    """A user's role on a site: who may see it and what they may do with it.

    Access is decided by these rows alone (never by Site.owner_id, which only says who
    added the site); every site keeps at least one owner (accounts/members.py).
    """

    __tablename__ = "site_members"
    __table_args__ = (
        UniqueConstraint("site_id", "user_id", name="uq_site_members_site_user"),
        Index("ix_site_members_user", "user_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    role: Mapped[str] = mapped_column(String(8))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    site: Mapped[Site] = relationship()
    user: Mapped[User] = relationship()


class Invitation(Model):
    """An invitation of one email address to a site with a role: single use, time-limited.

    Only the SHA-256 of its token is stored (the link is shown once and emailed); it is
    looked up by that digest. Accepted, revoked and expired invitations stay listed.
    """

    __tablename__ = "invitations"
    __table_args__ = (
        UniqueConstraint("token_hash", name="uq_invitations_token_hash"),
        Index("ix_invitations_site", "site_id", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"))
    email: Mapped[str] = mapped_column(String(254))
    role: Mapped[str] = mapped_column(String(8))
    token_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    expires_at: Mapped[datetime] = mapped_column(DateTime)
    accepted_at: Mapped[datetime | None] = mapped_column(DateTime)
    accepted_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime)
    # When the link was last emailed (None: never, e.g. without SMTP_URL).
    sent_at: Mapped[datetime | None] = mapped_column(DateTime)

    site: Mapped[Site] = relationship()
    created_by: Mapped[User | None] = relationship(foreign_keys=[created_by_id])

    def status(self, now: datetime | None = None) -> str:
        """pending, accepted, revoked or expired."""
        now = now or utcnow()
        if self.accepted_at is not None:
            return "accepted"
        if self.revoked_at is not None:
            return "revoked"
        return "pending" if self.expires_at > now else "expired"


class AuditEntry(Model):
    """One thing someone did: who, when, what, to what (never a secret, never an event).

    Keyed by the site's id and domain without a foreign key, so that the entry recording
    a site's deletion (and everything before it) outlives the site. Entries without a site
    (sign-ins) are shown on the audit pages of the sites their actor is a member of.
    accounts/audit.py writes and prunes them.
    """

    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_site_id", "site_id", "id"),
        Index("ix_audit_created_at", "created_at"),
        Index("ix_audit_actor_user", "actor_user_id", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[int | None] = mapped_column(Integer)
    site_domain: Mapped[str | None] = mapped_column(String(253))
    # Who: an email for people, "cli:<login>" for the command line.
    actor: Mapped[str] = mapped_column(String(300))
    actor_user_id: Mapped[int | None] = mapped_column(Integer)
    action: Mapped[str] = mapped_column(String(48))  # e.g. member_added, erase_visitor
    # What it was done to, without personal data of visitors (a SHA-256 for an erasure).
    subject: Mapped[str] = mapped_column(String(300))
    # Deletions only: how many events went.
    events_deleted: Mapped[int | None] = mapped_column(Integer)
    details: Mapped[str | None] = mapped_column(Text)  # JSON object of further facts
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
