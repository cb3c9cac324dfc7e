"""What a directory source delivers: entries (an Extension plus the vendor's id), groups and tombstones."""

from __future__ import annotations

from dataclasses import dataclass, field

from gateway.mirror.records import Extension


@dataclass(frozen=True)
class DirectoryEntry:
    """One extension as the vendor knows it: its stable id, its record (HA1 only) and its updated-at."""

    vendor_id: str
    extension: Extension
    updated_at: str = ""
    short_password: bool = False  # mirrored, but below records.SHORT_PASSWORD: `lifeline status` warns


@dataclass(frozen=True)
class Group:
    """A ring/hunt group: calling its number rings every member in parallel while Lifeline serves locally."""

    number: str
    name: str
    members: tuple[str, ...]
    vendor_id: str = ""


@dataclass(frozen=True)
class Tombstone:
    """The vendor says this entry was deleted."""

    vendor_id: str


@dataclass(frozen=True)
class Batch:
    """The result of one fetch.

    A full batch is the whole directory: entries it does not hold are deleted. A delta holds the
    changes since the cursor the engine passed in, tombstones included. `groups` is None when the
    source says nothing about groups (they are then left as they are).
    """

    full: bool
    entries: tuple[DirectoryEntry, ...] = ()
    tombstones: tuple[Tombstone, ...] = ()
    groups: tuple[Group, ...] | None = None
    cursor: str | None = None
    not_modified: bool = False
    notes: tuple[str, ...] = field(default_factory=tuple)
