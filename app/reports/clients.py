"""Which mail client and device fetched the open pixel, from its User-Agent.

A small classifier over the strings mail clients actually send, no heavy
dependency: the report groups unique opens by (client, device). Machine
opens (privacy-proxy prefetches) are counted apart by the tracking flags, so
this only sees human-likely opens.

Gmail and Yahoo fetch images through their own proxies, so every Gmail open
(web, Android, iOS) reads as "Gmail / Webmail": the proxy hides the device.
"""
import functools

IOS = ("iphone", "ipad", "ipod", "ios")


@functools.lru_cache(maxsize=4096)
def classify(user_agent):
    """(client, device) for a User-Agent string; ("Other", "Unknown") when nothing matches."""
    ua = (user_agent or "").strip()
    low = ua.lower()
    if not ua:
        return "Unknown", "Unknown"
    if "googleimageproxy" in low or "ggpht.com" in low:
        return "Gmail", "Webmail"
    if "yahoomailproxy" in low:
        return "Yahoo Mail", "Webmail"
    device = _device(low)
    if "outlook" in low or "microsoft office" in low or "msoffice" in low or "ms-office" in low:
        return "Outlook", device if device != "Webmail" else "Desktop"
    if "thunderbird" in low:
        return "Thunderbird", "Desktop"
    if "yahoo" in low:
        return "Yahoo Mail", device
    if "applewebkit" in low and "safari" not in low and "chrome" not in low:
        # Apple Mail (macOS, iOS) renders with WebKit but does not say Safari.
        if any(word in low for word in IOS):
            return "Apple Mail", "iOS"
        if "mac os x" in low or "macintosh" in low:
            return "Apple Mail", "Desktop"
    if "android" in low:
        if "gmail" in low:
            return "Gmail", "Android"
        return "Android mail app", "Android"
    if any(word in low for word in IOS):
        return "iOS mail app", "iOS"
    if any(word in low for word in ("edg/", "chrome/", "firefox/", "safari/", "opera")):
        return "Web browser", "Webmail"
    return "Other", "Unknown"


def _device(low):
    if "android" in low:
        return "Android"
    if any(word in low for word in IOS):
        return "iOS"
    if any(word in low for word in ("windows", "mac os x", "macintosh", "linux", "x11")):
        return "Desktop"
    return "Unknown"
