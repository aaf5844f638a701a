"""Country of an IP address, from a MaxMind .mmdb database.

By default the GeoLite2 database that ships inside the PyPI package
maxminddb-geolite2 (2018 data: good enough for countries, which rarely move);
LOFT_GEOIP_DB points at a newer GeoLite2-Country or -City .mmdb file.
Lookups are cached: the aggregator asks once per distinct address.
"""
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
