"""GET /metrics: the Prometheus text format, for this machine, or for whoever presents the bearer token.

Who may scrape: with a `metrics_token` (LOFT_METRICS_TOKEN, or the stored instance setting), a request
must carry `Authorization: Bearer <token>`, from anywhere; without one, only a client on this machine
(127.0.0.1 or ::1 as the real peer) gets the metrics. As for /health's detail (app/health/views.py), a
request relayed by a proxy (X-Forwarded-For or Forwarded present) is not "on this machine", whatever
address the proxy connects from: the caller is elsewhere. The metrics hold no team's data, but the queue
names, routes and volumes tell an outsider more than they need to know."""
import hmac
import ipaddress

from flask import Blueprint
from flask import Response
from flask import request

from app import settings
from app.metrics import exposition
from tasks import huey
from tasks import tx_huey

bp = Blueprint("metrics", __name__)

NEEDS_TOKEN = ("/metrics needs the bearer token set as LOFT_METRICS_TOKEN: send it as "
               "'Authorization: Bearer <token>'.\n")
WRONG_TOKEN = "/metrics: the bearer token does not match LOFT_METRICS_TOKEN.\n"
NOT_LOCAL = ("/metrics is served only to this machine (127.0.0.1 or ::1, not through a proxy). To scrape it from "
             "elsewhere, set LOFT_METRICS_TOKEN and send 'Authorization: Bearer <token>'.\n")


def refusal(token, authorization, remote_addr, relayed):
    """None when the scrape may proceed, else (status, message)."""
    if token:
        scheme, _, presented = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not presented.strip():
            return 401, NEEDS_TOKEN
        if not hmac.compare_digest(presented.strip().encode(), token.encode()):
            return 401, WRONG_TOKEN
        return None
    if relayed:
        return 403, NOT_LOCAL
    try:
        local = ipaddress.ip_address(remote_addr or "").is_loopback
    except ValueError:
        local = False
    return None if local else (403, NOT_LOCAL)


@bp.route("/metrics")
def scrape():
    # The peer itself: with LOFT_PROXIES, ProxyFix has put the forwarded address in REMOTE_ADDR and kept
    # the proxy's; the forwarding headers make such a request "relayed" either way.
    relayed = bool(request.headers.get("X-Forwarded-For") or request.headers.get("Forwarded"))
    refused = refusal(str(settings.get_setting("metrics_token") or ""), request.headers.get("Authorization"),
                      request.remote_addr, relayed)
    if refused:
        status, message = refused
        response = Response(message, status=status, mimetype="text/plain")
        if status == 401:
            response.headers["WWW-Authenticate"] = 'Bearer realm="loft-metrics"'
    else:
        response = Response(exposition.scrape((huey, tx_huey)), mimetype=None,
                            content_type=exposition.CONTENT_TYPE)
    response.headers["Cache-Control"] = "no-store"
    return response


scrape.public = True  # no team, no sign-in: its own check above (tests/test_teams.py reads this mark)
