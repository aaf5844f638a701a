"""The frame every /api/v1 operation stands in: the blueprint, the `operation` decorator, errors as
problem+json, and the OpenAPI document built from the same pydantic models that check each request.

`operation(...)` wraps a view in this order: the Bearer key (401; an address that presented too many
unknown keys this minute gets 429 first), the key's per-minute limit (429), the
role's permission through app.teams.permissions.can (403), the JSON body's media type and syntax
(415, 400), Idempotency-Key on POST (replay, 422, 409), then spectree's validation of the query and the
body against the declared models (422 with one message per field). Session cookies play no part: a
browser signed in to Loft cannot use its cookie here, so the CSRF check does not apply either.
"""
import copy
import functools

from flask import Blueprint
from flask import current_app
from flask import g
from flask import jsonify
from flask import request
import pydantic
from pydantic import ConfigDict
from pydantic import Field
from spectree import Response as Responses
from spectree import SecurityScheme
from spectree.models import SecuritySchemeData
from spectree import SpecTree
from werkzeug.exceptions import BadRequest
from werkzeug.exceptions import HTTPException
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.http import HTTP_STATUS_CODES

from app.api import idempotency
from app.api import keys
from app.api import ratelimit
from app.errors import Problem
from app.models import ROLE_LABELS
from app.teams.permissions import PERMISSIONS
from app.teams.permissions import can

PREFIX = "/api/v1"
PROBLEM_TYPE = "application/problem+json"

bp = Blueprint("api", __name__, url_prefix=PREFIX)


# Request and answer schemas are pydantic models, not tables: they derive from Schema, so no class here is
# taken for a peewee model (tests/test_structure_modules.py looks for subclasses of "BaseModel").
Schema = pydantic.BaseModel


class ApiProblem(Problem):
    """A refusal the API answers with `status` (RFC 9457: title, detail, per-field `errors`), and any
    `headers` it needs (WWW-Authenticate, Retry-After)."""

    def __init__(self, status, detail, title=None, errors=None, headers=None):
        super().__init__(detail, errors=errors)
        self.status = status
        self.title = title
        self.headers = headers or {}


class ProblemOut(Schema):
    """application/problem+json (RFC 9457), with the message for each field that was refused."""
    type: str = "about:blank"
    title: str
    status: int
    detail: str
    errors: dict[str, str] = Field(default_factory=dict)


class Strict(Schema):
    """Request models refuse fields they do not know, so a misspelt name is an error, not a no-op, and
    take each value only in its own JSON type: 0 is not false and "5" is not 5."""
    model_config = ConfigDict(extra="forbid", strict=True)


def from_query_string(model):
    """`model` taking its values from text, as a query string gives every value (still refusing unknown
    names); the document names it as before."""
    return type(model.__name__, (model,), {"model_config": ConfigDict(model.model_config, strict=False),
                                           "__module__": model.__module__, "__doc__": model.__doc__})


def _validation_problem(req, resp, error, instance, model_adapter):
    """spectree's `before` hook: a request its models refused becomes our problem, one message per field."""
    if error is None:
        return
    errors = {}
    for item in error.errors():
        field = ".".join(str(part) for part in item.get("loc", ())) or "body"
        errors.setdefault(field, item.get("msg", "is not valid"))
    raise ApiProblem(422, "Some values were not accepted; see errors.", errors=errors)


spec = SpecTree(
    "flask", mode="strict", title="Loft API", version="v1",
    description="Contacts, lists, subscriptions, custom fields and suppressions of one team. Send an API key "
                "(Team settings > API keys) as `Authorization: Bearer <key>`; it acts with its role.",
    security_schemes=[SecurityScheme(name="bearer", data=SecuritySchemeData(type="http", scheme="bearer"))],
    security={"bearer": []}, before=_validation_problem, validation_error_status=422,
    validation_error_model=ProblemOut,
    # Schemas under their class names (spectree adds a hash of the module by default): the reference reads them.
    naming_strategy=lambda model: model.__name__, nested_naming_strategy=lambda parent, child: child)

# operationId -> (status, path pattern) of each operation that answers with a Location header.
LOCATIONS = {}

# Every operation may answer these; a view's own answers are added to them.
COMMON_ANSWERS = {"HTTP_400": ProblemOut, "HTTP_401": ProblemOut, "HTTP_403": ProblemOut, "HTTP_404": ProblemOut,
                  "HTTP_413": ProblemOut, "HTTP_415": ProblemOut, "HTTP_429": ProblemOut}


def operation(rule, method, permission, *, ok=None, status=200, query=None, body=None, tags=(), problems=(),
              location=None):
    """Register `view` as the operation `method rule`, allowed to roles with `permission`.

    `query` and `body` are pydantic models the request must match (the view gets the parsed models as
    keyword arguments `query` and `body`); `ok` is the model of the answer with `status` (None: 204, no
    body). `problems` are further statuses the view refuses with (a DELETE's 409), declared as problems.
    `location` is the path, under /api/v1, of what a create made, with the answer's fields in braces
    ("/contacts/{id}"): sent as the Location header and declared in the document.
    A POST honours Idempotency-Key. The view returns a model instance (or None for 204)."""
    if permission not in PERMISSIONS:
        raise KeyError(f"unknown permission {permission!r}")
    if query is not None:
        query = from_query_string(query)
    if ok is None:
        status = 204
    answers = dict(COMMON_ANSWERS, **{f"HTTP_{status}": ok})
    if body is not None or query is not None:
        answers["HTTP_422"] = ProblemOut
    if method == "POST":
        answers["HTTP_409"] = ProblemOut
        answers.setdefault("HTTP_422", ProblemOut)
    answers.update({f"HTTP_{code}": ProblemOut for code in problems})

    def decorate(view):
        def call(*args, **kwargs):
            context = getattr(request, "context", None)
            if query is not None:
                kwargs["query"] = context.query
            if body is not None:
                kwargs["body"] = context.json
            result = view(*args, **kwargs)
            if ok is None:
                return "", 204
            if location:
                return result, status, {"Location": PREFIX + location.format(**dict(result))}
            return result, status

        call.__name__, call.__doc__ = view.__name__, view.__doc__
        validated = spec.validate(query=query, json=body, resp=Responses(**answers), tags=tags,
                                  operation_id=view.__name__)(call)

        @functools.wraps(validated)  # spectree finds its metadata through __wrapped__
        def endpoint(*args, **kwargs):
            authenticate(permission)
            if body is not None:
                check_json_body()
            if method == "POST":
                return idempotency.guarded(g.api_key, validated, args, kwargs)
            return validated(*args, **kwargs)

        endpoint.api_permission = permission
        if location:
            LOCATIONS[view.__name__] = (str(status), location)
        endpoint.csrf_exempt = True  # no cookie is read here, so there is no session to forge a request for
        bp.add_url_rule(rule, view.__name__, endpoint, methods=[method])
        return endpoint
    return decorate


def authenticate(permission):
    """Set g.api_key, g.team and g.role from the Bearer key, count the request, check the permission."""
    g.membership = None  # a signed-in browser's team never applies here
    g.team = None
    scheme, _, raw = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not raw.strip():
        raise ApiProblem(401, "Send an API key as “Authorization: Bearer <key>” (Team settings > API keys).",
                         headers={"WWW-Authenticate": 'Bearer realm="Loft API"'})
    key = keys.known_key(raw.strip()) or _look_up_key(raw.strip())
    g.api_key, g.team, g.role = key, key.team, key.role
    retry_after = ratelimit.hit(key, current_app.config["API_RATE_PER_MINUTE"])
    if retry_after:
        raise ApiProblem(429, f"This key made more than {current_app.config['API_RATE_PER_MINUTE']} requests "
                              f"this minute; retry in {retry_after} s.", headers={"Retry-After": str(retry_after)})
    if not can(key.role, permission):
        raise ApiProblem(403, f"This key's role ({ROLE_LABELS.get(key.role, key.role)}) does not have the "
                              f"permission “{permission}” ({PERMISSIONS[permission]}). Use a key with a role "
                              "that does.")


def _look_up_key(raw):
    """The key `raw` is, looked up, unless its client address presented too many unknown keys this minute
    (429, before the lookup, so guessing is slowed to that rate); an unknown or revoked key is a 401 that
    counts against the address."""
    limit = current_app.config["API_AUTH_FAILURES_PER_MINUTE"]
    address = request.remote_addr or ""
    wait = ratelimit.sign_in_wait(address, limit)
    if wait:
        raise ApiProblem(429, f"This address presented more than {limit} unknown or revoked API keys this "
                              f"minute; retry in {wait} s.", headers={"Retry-After": str(wait)})
    key = keys.authenticate(raw)
    if key is None:
        ratelimit.failed_sign_in(address)
        raise ApiProblem(401, "This API key is not valid: it is unknown, mistyped or revoked.",
                         headers={"WWW-Authenticate": 'Bearer realm="Loft API", error="invalid_token"'})
    return key


def check_json_body():
    if not request.is_json:
        raise ApiProblem(415, "Send the body as JSON, with Content-Type: application/json.")
    try:
        request.get_json()
    except BadRequest:
        raise ApiProblem(400, "The body is not valid JSON.", errors={"body": "not valid JSON"}) from None


# --- Errors ---------------------------------------------------------------------------------------

def problem_response(status, detail, title=None, errors=None, headers=None):
    title = title or HTTP_STATUS_CODES.get(status, "Error")
    response = jsonify(ProblemOut(title=title, status=status, detail=detail,
                                  errors={str(k): str(v) for k, v in (errors or {}).items()}).model_dump())
    response.status_code = status
    response.mimetype = PROBLEM_TYPE
    response.headers.update(headers or {})
    return response


def refused(problem):
    """Any Problem a service raised: its own status when it has one (404 for a missing key), else 422,
    with the service's per-field messages."""
    status = getattr(problem, "status", 422)
    return problem_response(status, problem.message, getattr(problem, "title", None), problem.errors,
                            getattr(problem, "headers", None))


def http_error(error):
    detail = error.description or error.name
    if isinstance(error, RequestEntityTooLarge):
        detail = f"The body is larger than the {request.max_content_length or 0:,} bytes this API accepts."
    elif error.code == 404:
        detail = "There is no such resource in this team."
    response = problem_response(error.code or 500, detail, error.name)
    if error.code == 405:
        response.headers["Allow"] = ", ".join(error.valid_methods or ())
    return response


def problem_for(error):
    """The problem+json answer to an HTTP error or a Problem raised outside an API view (no route matched,
    a body refused before the view was known), for app.__init__'s error handlers."""
    return refused(error) if isinstance(error, Problem) else http_error(error)


def wants_problem():
    """True for a request to the API, whose errors are problem+json even when no API view matched."""
    return request.path == PREFIX or request.path.startswith(PREFIX + "/")


bp.register_error_handler(Problem, refused)
bp.register_error_handler(HTTPException, http_error)


def document():
    """The OpenAPI 3.1 document of every operation, generated from the registered routes and their models
    (spectree keeps it once made: the routes do not change while the process runs). Error answers are
    declared as application/problem+json, the media type they are sent with; a create's answer declares
    its Location header."""
    made = copy.deepcopy(spec.spec)
    for item in made["paths"].values():
        for detail in item.values():
            if detail.get("operationId") in LOCATIONS:
                code, pattern = LOCATIONS[detail["operationId"]]
                detail["responses"][code]["headers"] = {"Location": {
                    "description": f"The path of what was made: {PREFIX}{pattern}.", "required": True,
                    "schema": {"type": "string", "format": "uri-reference"}}}
            for code, answer in detail.get("responses", {}).items():
                content = answer.get("content", {})
                if code.isdigit() and int(code) >= 400 and "application/json" in content:
                    answer["content"] = {PROBLEM_TYPE: content["application/json"]}
    return made
