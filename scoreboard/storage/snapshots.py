"""Snapshots in the store: an engine image as a checked, compressed blob, and recovery
that starts from the newest good one.

A snapshot is `(seq, created_at, format, checksum, body)`: the body is the image
(`scoreboard.core.image`) encoded as MessagePack and compressed with zlib; the checksum
is the SHA-256 of the body, so damage is found before anything is decoded. A snapshot
that cannot be used (bad checksum, unknown format, a body that does not decode or does
not hold together, a seq beyond the log) is skipped with a warning and the next older one
is tried; with none left, recovery loads the stored rows as before.
"""

from __future__ import annotations

import hashlib
import logging
import zlib
from contextlib import aclosing

import msgspec

from scoreboard.core.engine import Engine
from scoreboard.core.image import EngineImage, restore
from scoreboard.storage.base import ActionLog, StoredSnapshot
from scoreboard.storage.bulk import return_free_memory

log = logging.getLogger("scoreboard.storage.snapshots")

FORMAT = "msgpack+zlib/2"  # /2: boards as columns in rank order (/1 is ignored)
KEEP = 3  # snapshots kept; older ones are deleted when a new one is written
_DECODER = msgspec.msgpack.Decoder(EngineImage)
_ENCODER = msgspec.msgpack.Encoder()


class SnapshotDamaged(ValueError):
    """A stored snapshot cannot be used; the message says why."""


def encode(image: EngineImage, created_at: float) -> StoredSnapshot:
    """The stored form of an image. Pure computation (zlib lets go of the GIL): the
    writer runs it in a thread."""
    body = zlib.compress(_ENCODER.encode(image), 1)
    return StoredSnapshot(image.last_seq, created_at, FORMAT, _checksum(body), body)


def decode(snapshot: StoredSnapshot) -> EngineImage:
    """The image of a stored snapshot; raises `SnapshotDamaged`."""
    if snapshot.format != FORMAT:
        raise SnapshotDamaged(f"unknown format {snapshot.format!r}")
    if _checksum(snapshot.body) != snapshot.checksum:
        raise SnapshotDamaged("the checksum does not match the body")
    try:
        image = _DECODER.decode(zlib.decompress(snapshot.body))
    except (zlib.error, msgspec.DecodeError) as exc:
        raise SnapshotDamaged(f"the body does not decode: {exc}") from None
    if image.last_seq != snapshot.seq:
        raise SnapshotDamaged(f"the body is of seq {image.last_seq}")
    return image


def _checksum(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


async def restore_newest(store: ActionLog, engine: Engine, *, up_to: int | None = None
                         ) -> int | None:
    """Restore the empty `engine` from the newest usable snapshot (of a seq at most
    `up_to`, when given); its seq, or None when there is none (the engine untouched).
    The records after it are for the caller to apply (`replay`)."""
    last = await store.last_seq()
    for info in await store.snapshots():
        if up_to is not None and info.seq > up_to:
            continue
        try:
            if info.seq > last:
                raise SnapshotDamaged(f"the log ends at seq {last}")
            stored = await store.read_snapshot(info.seq)
            if stored is None:
                continue  # deleted since it was listed: an older one will do
            restore(engine, decode(stored))
        except ValueError as exc:  # SnapshotDamaged, or an image that does not hold
            log.warning("ignoring the snapshot at seq %d: %s", info.seq, exc)
            continue
        del stored  # the body and the decoded columns are gone: their pages can go back
        return_free_memory()
        return info.seq
    return None


async def replay(store: ActionLog, engine: Engine, *, up_to: int | None = None) -> int:
    """Apply the log's records after `engine.last_seq` (up to `up_to`, when given), in
    order; how many."""
    count = 0
    async with aclosing(store.scan(after=engine.last_seq)) as chunks:
        async for chunk in chunks:
            for record in chunk:
                if up_to is not None and record.seq > up_to:
                    return count
                engine.apply(record)
                count += 1
            engine.settle()
    return count
