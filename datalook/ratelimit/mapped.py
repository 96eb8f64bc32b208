"""The embedded rate-limit storage: exact moving windows in a memory-mapped file.

Every worker process of a host maps the same file (``instance/ratelimit.window``) and
decides under one kernel lock (``flock``), so a key's budget is shared exactly as with one
process. A decision reads and writes a few dozen bytes of shared memory: no SQL, no
transaction, no system call but the lock, which is what made the SQLite window the most
expensive step of an ingestion request (see bench/README.md).

The rule is the one of window.py (read its docstring): accept a hit of ``amount`` at
``now`` iff the entries with ``now - expiry < ts <= now`` plus ``amount`` fit the limit; an
entry stamped ``t`` stops counting at exactly ``t + expiry``; refused hits record nothing;
timestamps are integer microseconds.

Layout: a 64-byte file header (magic, version, geometry), then ``slots`` fixed-size slots.
A slot holds one key (by a 128-bit BLAKE2b digest of its name): its live count, its
fixed-window counter, and a ring of up to ``capacity`` timestamped entries, oldest first.
Keys find their slot by open addressing; a slot whose window and counter have both expired
is free for another key, so the table holds the keys active in the last window, not every
key ever seen. A full table is a storage failure (the caller lets the request through), so
limits that anyone can multiply (one per client address) and the keys' limits live in
separate tables (``sibling``, used by limiter.event_storage).

Exactness and its one bound: hits in the same microsecond share an entry, so a window is
exact while it needs at most ``capacity`` (default 1024) distinct timestamps: any limit up to
1024, and the default 500 per 10 s. A busier window is compacted by merging neighbouring
entries into the later one's timestamp. That can only make a hit count for a little longer,
never shorter: the limit is never exceeded in any interval, at the cost of sometimes
refusing slightly early once a key makes more than ``capacity`` hits per window.
"""

from __future__ import annotations

import functools
import hashlib
import mmap
import os
import struct
import threading
from typing import Any

from limits.errors import ConfigurationError
from limits.storage import MovingWindowSupport, Storage

from ..sql.filelock import WriteLock
from .window import (
    MMAP_SCHEME,
    US_PER_SECOND,
    hit_possible,
    option_clock,
    storage_path,
    to_us,
)

_MAGIC = b"DLWINDOW"
_VERSION = 1
_FILE_HEADER = struct.Struct("<8sIII")  # magic, version, slots, capacity
_FILE_HEADER_SIZE = 64
# digest, window expires (newest entry + expiry), live count, ring head, ring count,
# counter value, counter expires. Times in microseconds; 0 means "never".
_SLOT = struct.Struct("<16sqqiiqq")
_SLOT_HEADER_SIZE = 64
_ENTRY = struct.Struct("<qq")  # timestamp (us), cost
_EMPTY = bytes(16)  # the digest of a slot never used: ends a probe sequence

DEFAULT_SLOTS = 4096
DEFAULT_CAPACITY = 1024
# Slots looked at for a key's own slot or a free one. When all of them are held by active
# keys, the one whose window ends soonest is evicted for the newcomer (see _find).
MAX_PROBE = 512


class WindowTableFull(RuntimeError):
    """No slot could be claimed (a table of fewer slots than a probe sequence needs)."""


class MappedWindowStorage(Storage, MovingWindowSupport):
    """Exact moving window shared by the processes of a host through a mapped file.

    URI ``datalook+mmap:////absolute/path/ratelimit.window``. Options: ``clock`` (zero-arg
    callable, float seconds; default ``time.time``), ``slots`` and ``capacity`` (geometry of
    a new file; an existing file keeps its own), ``key_prefix``.
    """

    STORAGE_SCHEME = [MMAP_SCHEME]

    def __init__(self, uri: str, wrap_exceptions: bool = False, **options: Any) -> None:
        """Parse the URI and options; the file is created or mapped on first use."""
        self.clock = option_clock(options)
        self._new_slots = int(options.pop("slots", DEFAULT_SLOTS))
        self._new_capacity = int(options.pop("capacity", DEFAULT_CAPACITY))
        self.key_prefix = str(options.pop("key_prefix", ""))
        if options:
            raise ConfigurationError(
                f"unknown {MMAP_SCHEME} storage option(s): {', '.join(sorted(options))}"
            )
        if self._new_slots < 1 or self._new_capacity < 2:
            raise ConfigurationError(f"{MMAP_SCHEME}: slots must be >= 1 and capacity >= 2")
        super().__init__(uri, wrap_exceptions=wrap_exceptions)
        self.path = storage_path(uri, MMAP_SCHEME, "ratelimit.window")
        self._lock = WriteLock(self.path + ".lock")
        self._map: mmap.mmap | None = None
        self._slots = 0
        self._capacity = 0
        self._slot_size = 0
        self._seen = threading.local()
        self._siblings: dict[str, MappedWindowStorage] = {}
        self.evictions = 0  # slots this process took from active keys (a full table)

    @property
    def base_exceptions(self) -> type[Exception] | tuple[type[Exception], ...]:
        """Errors that mean the storage failed (the caller lets the request through)."""
        return (OSError, ValueError, WindowTableFull)

    # -- the mapped file ------------------------------------------------------------------

    def _mapped(self) -> mmap.mmap:
        """Map the file, creating it with this storage's geometry if it does not exist.

        Called with the lock held, so two processes never both initialise it. A mapping
        inherited through fork stays valid: it is the same shared memory.
        """
        if self._map is not None:
            return self._map
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            size = os.fstat(fd).st_size
            if size == 0:
                slots, capacity = self._new_slots, self._new_capacity
                size = _file_size(slots, capacity)
                os.ftruncate(fd, size)  # sparse: pages cost memory only once used
                os.pwrite(fd, _FILE_HEADER.pack(_MAGIC, _VERSION, slots, capacity), 0)
            header = os.pread(fd, _FILE_HEADER.size, 0)
            magic, version, slots, capacity = _FILE_HEADER.unpack(header)
            if magic != _MAGIC or version != _VERSION or size != _file_size(slots, capacity):
                raise ConfigurationError(f"{self.path} is not a DataLook rate-limit window file")
            self._map = mmap.mmap(fd, size)
        finally:
            os.close(fd)  # the mapping keeps the file open
        self._slots, self._capacity = slots, capacity
        self._slot_size = _slot_size(capacity)
        return self._map

    def _now_us(self) -> int:
        """Current time in microseconds from the injectable clock."""
        return to_us(self.clock())

    def _slot_offset(self, index: int) -> int:
        """Where slot ``index`` starts in the file."""
        return _FILE_HEADER_SIZE + index * self._slot_size

    def _find(self, view: mmap.mmap, digest: bytes, now: int, create: bool) -> int | None:
        """Return the offset of the key's slot; with ``create``, claim a free one."""
        home = int.from_bytes(digest[:8], "little") % self._slots
        free = None
        # The active slot whose window and counter end soonest: the least recently hit.
        oldest, oldest_ends = None, None
        for step in range(min(self._slots, MAX_PROBE)):
            offset = self._slot_offset((home + step) % self._slots)
            owner, expires, _, _, _, _, counter_expires = _SLOT.unpack_from(view, offset)
            if owner == digest:
                return offset
            if owner == _EMPTY:
                free = offset if free is None else free
                break  # no key's probe sequence goes past a never-used slot
            ends = max(expires, counter_expires)
            if free is None and ends <= now:
                free = offset  # an idle key's slot; keep looking for our own first
            if oldest_ends is None or ends < oldest_ends:
                oldest, oldest_ends = offset, ends
        if not create:
            return None
        if free is None:
            # Full of active keys (a flood of client addresses, say). Switching limits off
            # would hand the flood what it wants, and refusing newcomers would lock out real
            # users: evict the least recently hit key instead. Only that key's window starts
            # afresh, and only after it has been idle longer than every other one here.
            free = oldest
            self.evictions += 1
        if free is None:
            raise WindowTableFull(f"{self.path}: no slot to claim")
        _SLOT.pack_into(view, free, digest, 0, 0, 0, 0, 0, 0)
        return free

    def _claimed(self, digest: bytes) -> tuple[mmap.mmap, int, int]:
        """(the table, now in µs, the offset of the key's slot, claimed if new); call with
        the lock held. The clock is read under the lock: stamps follow the order of
        decisions."""
        view = self._mapped()
        now = self._now_us()
        offset = self._find(view, digest, now, create=True)
        if offset is None:  # create=True claims a slot or raises; this is for the types
            raise WindowTableFull("no free slot")
        return view, now, offset

    # -- moving window --------------------------------------------------------------------

    def acquire_entry(self, key: str, limit: int, expiry: int, amount: int = 1) -> bool:
        """Atomically record a hit of cost ``amount`` if the window has room; else record
        nothing and return False."""
        if not hit_possible(limit, expiry, amount):
            return False
        digest = _digest(self.key_prefix + key)
        expiry_us = expiry * US_PER_SECOND
        with self._lock.hold():
            view, now, offset = self._claimed(digest)
            fields = _SLOT.unpack_from(view, offset)
            expires, live, head, count = fields[1:5]
            live, head, count, oldest = self._expire(
                view, offset, live, head, count, now - expiry_us
            )
            accepted = live + amount <= limit
            if accepted:
                head, count, newest = self._append(view, offset, head, count, now, amount)
                live += amount
                expires = newest + expiry_us
                oldest = newest if oldest is None else oldest
            elif not count:
                expires = 0  # the newest entry is unchanged by a refusal, and so is expires
            _SLOT.pack_into(view, offset, digest, expires, live, head, count, *fields[5:])
        # The headers that follow (get_moving_window) describe exactly this decision.
        self._seen.window = (digest, expiry_us, oldest, live)
        return accepted

    def _entry(self, view: mmap.mmap, offset: int, head: int, index: int) -> tuple[int, int]:
        """The ring's ``index``-th entry (0 = oldest) as (timestamp, cost)."""
        position = (head + index) % self._capacity
        return _ENTRY.unpack_from(view, offset + _SLOT_HEADER_SIZE + position * _ENTRY.size)

    def _expire(
        self, view: mmap.mmap, offset: int, live: int, head: int, count: int, cutoff: int
    ) -> tuple[int, int, int, int | None]:
        """Drop entries stamped at or before ``cutoff``: each entry once, O(1) amortised.

        Returns the new (live, head, count) and the oldest remaining timestamp (None if
        none remains).
        """
        if not 0 <= count <= self._capacity or not 0 <= head < self._capacity:
            return 0, 0, 0, None  # a slot torn by a crash mid-write: start it afresh
        while count:
            stamp, cost = self._entry(view, offset, head, 0)
            if stamp > cutoff:
                return live, head, count, stamp
            live -= cost
            head = (head + 1) % self._capacity
            count -= 1
        return 0, head, 0, None

    def _append(
        self, view: mmap.mmap, offset: int, head: int, count: int, now: int, amount: int
    ) -> tuple[int, int, int]:
        """Add an entry at ``now``; return the ring's new (head, count, newest timestamp)."""
        if count:
            newest, cost = self._entry(view, offset, head, count - 1)
            if newest >= now:
                # Same microsecond (or a clock stepped back): share the newest entry, which
                # keeps the ring in time order and never shortens any hit's life.
                self._put(view, offset, head, count - 1, newest, cost + amount)
                return head, count, newest
        if count == self._capacity:
            head, count = self._compact(view, offset, head, count)
        self._put(view, offset, head, count, now, amount)
        return head, count + 1, now

    def _put(
        self, view: mmap.mmap, offset: int, head: int, index: int, stamp: int, cost: int
    ) -> None:
        """Write the ring's ``index``-th entry."""
        position = (head + index) % self._capacity
        _ENTRY.pack_into(view, offset + _SLOT_HEADER_SIZE + position * _ENTRY.size, stamp, cost)

    def _compact(self, view: mmap.mmap, offset: int, head: int, count: int) -> tuple[int, int]:
        """Halve a full ring by merging neighbours into the later timestamp (never lenient).

        The ring is read and written in one struct call each: done entry by entry, this
        held the lock for a millisecond or more, once every capacity/2 hits of a busy key.
        """
        ring = offset + _SLOT_HEADER_SIZE
        first = min(count, self._capacity - head)  # entries before the ring wraps
        flat = _entries(first).unpack_from(view, ring + head * _ENTRY.size)
        flat += _entries(count - first).unpack_from(view, ring)
        # flat is stamp0, cost0, stamp1, cost1, …: pair entry 2i with entry 2i+1.
        pairs = count // 2
        stamps = flat[2 : 4 * pairs : 4]
        first_costs, second_costs = flat[1 : 4 * pairs : 4], flat[3 : 4 * pairs : 4]
        costs = [a + b for a, b in zip(first_costs, second_costs, strict=True)]
        merged = [value for pair in zip(stamps, costs, strict=True) for value in pair]
        if count % 2:
            merged += flat[-2:]  # an odd last entry stays as it is
        _entries(len(merged) // 2).pack_into(view, ring, *merged)
        return 0, len(merged) // 2

    def get_moving_window(self, key: str, limit: int, expiry: int) -> tuple[float, int]:
        """Return (timestamp of the oldest live entry, live count), or (now, 0).

        Right after acquire_entry on the same key in the same thread, this is the window
        that decision saw.
        """
        digest = _digest(self.key_prefix + key)
        expiry_us = expiry * US_PER_SECOND
        seen = getattr(self._seen, "window", None)
        if seen is not None:
            self._seen.window = None
            seen_digest, seen_expiry, oldest, live = seen
            if seen_digest == digest and seen_expiry == expiry_us:
                if oldest is None or live <= 0:
                    return self._now_us() / US_PER_SECOND, 0
                return oldest / US_PER_SECOND, live
        with self._lock.hold():
            view = self._mapped()
            now = self._now_us()
            offset = self._find(view, digest, now, create=False)
            if offset is None:
                return now / US_PER_SECOND, 0
            _, _, live, head, count, _, _ = _SLOT.unpack_from(view, offset)
            live, _, _, oldest = self._expire(view, offset, live, head, count, now - expiry_us)
            if oldest is None:
                return now / US_PER_SECOND, 0
            return oldest / US_PER_SECOND, live

    # -- fixed-window counters (abstract in Storage; unused by the moving window) ----------

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        """Add ``amount`` to a counter that lives ``expiry`` seconds from its first hit."""
        digest = _digest(self.key_prefix + key)
        with self._lock.hold():
            view, now, offset = self._claimed(digest)
            fields = list(_SLOT.unpack_from(view, offset))
            if fields[6] <= now:
                fields[5], fields[6] = amount, now + expiry * US_PER_SECOND
            else:
                fields[5] += amount
            _SLOT.pack_into(view, offset, *fields)
            return int(fields[5])

    def _counter(self, key: str) -> tuple[int, int, int]:
        """(value, expires_us, now_us) of a counter; value 0 when absent or expired."""
        digest = _digest(self.key_prefix + key)
        with self._lock.hold():
            view = self._mapped()
            now = self._now_us()
            offset = self._find(view, digest, now, create=False)
            if offset is None:
                return 0, now, now
            value, expires = _SLOT.unpack_from(view, offset)[5:]
            return (value, expires, now) if expires > now else (0, now, now)

    def get(self, key: str) -> int:
        """Current value of a counter, 0 if absent or expired."""
        return self._counter(key)[0]

    def get_expiry(self, key: str) -> float:
        """Expiry time (epoch seconds) of a counter, or now if absent."""
        return self._counter(key)[1] / US_PER_SECOND

    # -- administration -----------------------------------------------------------------

    def check(self) -> bool:
        """True if the file can be mapped."""
        try:
            with self._lock.hold():
                self._mapped()
        except (OSError, ValueError, ConfigurationError):
            return False
        return True

    def clear(self, key: str) -> None:
        """Forget everything recorded for ``key`` (its slot stays reserved for it)."""
        digest = _digest(self.key_prefix + key)
        with self._lock.hold():
            view = self._mapped()
            offset = self._find(view, digest, self._now_us(), create=False)
            if offset is not None:
                _SLOT.pack_into(view, offset, digest, 0, 0, 0, 0, 0, 0)

    def reset(self) -> int | None:
        """Forget all keys; return how many slots were in use."""
        with self._lock.hold():
            view = self._mapped()
            used = 0
            for index in range(self._slots):
                offset = self._slot_offset(index)
                if _SLOT.unpack_from(view, offset)[0] != _EMPTY:
                    used += 1
                    _SLOT.pack_into(view, offset, _EMPTY, 0, 0, 0, 0, 0, 0)
            return used

    def close(self) -> None:
        """Unmap the file and its siblings' (each is mapped again on its next use)."""
        with self._lock.hold():
            if self._map is not None:
                self._map.close()
                self._map = None
        for sibling in list(self._siblings.values()):
            sibling.close()

    def sibling(self, name: str) -> MappedWindowStorage:
        """A table of its own beside this one (``ratelimit-NAME.window`` next to
        ``ratelimit.window``), with the same options and this storage's clock.

        For limits that must not share slots: when a table is full, a key without a slot
        goes unlimited (a storage failure), so keys that anyone can create from many
        addresses should never be able to crowd out the others.
        """
        found = self._siblings.get(name)
        if found is None:
            stem, suffix = os.path.splitext(self.path)
            found = MappedWindowStorage(
                f"{MMAP_SCHEME}:///{stem}-{name}{suffix}",
                clock=lambda: self.clock(),  # follows this storage's clock, even if replaced
                slots=self._new_slots,
                capacity=self._new_capacity,
                key_prefix=self.key_prefix,
            )
            found = self._siblings.setdefault(name, found)
        return found

    def active_keys(self) -> int:
        """Slots whose window or counter is still live, for tests and diagnostics."""
        with self._lock.hold():
            view = self._mapped()
            now = self._now_us()
            active = 0
            for index in range(self._slots):
                fields = _SLOT.unpack_from(view, self._slot_offset(index))
                active += fields[0] != _EMPTY and (fields[1] > now or fields[6] > now)
            return active


@functools.lru_cache(maxsize=8)
def _entries(n: int) -> struct.Struct:
    """The layout of ``n`` consecutive ring entries."""
    return struct.Struct(f"<{2 * n}q")


@functools.lru_cache(maxsize=4096)
def _digest(name: str) -> bytes:
    """The 128-bit name of a key in the table (never all zeros in practice). Kept for the
    busiest names: every check of a key computes it twice."""
    return hashlib.blake2b(name.encode(), digest_size=16).digest()


def _file_size(slots: int, capacity: int) -> int:
    """Bytes of a window file with this geometry."""
    return _FILE_HEADER_SIZE + slots * _slot_size(capacity)


def _slot_size(capacity: int) -> int:
    """Bytes of one slot: its header and a ring of ``capacity`` entries."""
    return _SLOT_HEADER_SIZE + capacity * _ENTRY.size
