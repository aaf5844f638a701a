"""The built-in block templates ("starters"): ready-made block emails in app/content/blocks/starters/, one
JSON file each ({"name", "description", "document"}), the block versions of the built-in layouts.
A team starts a campaign or a template from one; the copy is theirs to edit."""
import functools
import json
from dataclasses import dataclass
from pathlib import Path

from app.content.blocks.schema import validate_document

STARTERS_DIR = Path(__file__).resolve().parent / "starters"
ORDER = ("newsletter", "announcement", "event", "letter")


@dataclass(frozen=True, eq=False)  # hashed by identity: the cached tuple of starters is a cache key elsewhere
class Starter:
    key: str
    name: str
    description: str
    document: dict


def starters():
    """Every starter, in the order a marketer reaches for them; each checked like any document."""
    return _read(tuple((path.name, path.stat().st_mtime_ns) for path in sorted(STARTERS_DIR.glob("*.json"))))


def starter(key):
    return next((item for item in starters() if item.key == key), None)


@functools.lru_cache(maxsize=1)
def _read(signature):
    found = []
    for name, _changed in signature:
        data = json.loads((STARTERS_DIR / name).read_text(encoding="utf-8"))
        found.append(Starter(key=name.removesuffix(".json"), name=data["name"], description=data["description"],
                             document=validate_document(data["document"])))
    return tuple(sorted(found, key=lambda item: (ORDER.index(item.key) if item.key in ORDER else len(ORDER),
                                                   item.key)))
