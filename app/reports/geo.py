"""Country of an IP address, from a MaxMind .mmdb database.

By default the GeoLite2 database that ships inside the PyPI package
maxminddb-geolite2, built in July 2018: address blocks have been reassigned
between countries since, so LOFT_GEOIP_DB should point at a current
GeoLite2-Country or -City .mmdb file (docs/operations.md). Reports say which
database they used and warn when it is more than a year old (database_info).
Lookups are cached: the aggregator asks once per distinct address.
"""
import datetime
import functools
import ipaddress
import logging

from flask import current_app

log = logging.getLogger(__name__)

_readers = {}


def _reader(path):
    if path not in _readers:
        reader = None
        try:
            if path:
                import maxminddb
                reader = maxminddb.open_database(path)
            else:
                from geolite2 import geolite2
                reader = geolite2.reader()
        except Exception:  # noqa: BLE001 - no database: every country is "unknown", reports still work
            log.exception("could not open the GeoIP database %r", path or "(maxminddb-geolite2)")
        _readers[path] = reader
    return _readers[path]


STALE_AFTER = datetime.timedelta(days=365)


def database_info(path="", today=None):
    """What the report should say about its country data: {"type", "built" (a date), "age_days", "stale",
    "bundled"}, or None when no database could be opened."""
    reader = _reader(path)
    if reader is None:
        return None
    meta = reader.metadata()
    built = datetime.datetime.fromtimestamp(meta.build_epoch, datetime.timezone.utc).date()
    age = (today or datetime.datetime.now(datetime.timezone.utc).date()) - built
    return {"type": meta.database_type, "built": built, "age_days": age.days, "stale": age > STALE_AFTER,
            "bundled": not path}


def configured_path():
    try:
        return current_app.config.get("GEOIP_DB", "") or ""
    except RuntimeError:
        return ""


@functools.lru_cache(maxsize=65536)
def country(ip, path=""):
    """ISO 3166 code of the country of `ip` ("FR"), or "" when unknown or private."""
    if not ip:
        return ""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ""
    if not address.is_global:
        return ""
    reader = _reader(path)
    if reader is None:
        return ""
    try:
        found = reader.get(str(address))
    except (ValueError, OSError):
        return ""
    if not found:
        return ""
    place = found.get("country") or found.get("registered_country") or {}
    return place.get("iso_code", "") or ""
