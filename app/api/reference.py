"""The API's description: /api/v1/openapi.json (OpenAPI 3.1, generated from the operations and their models)
and /api/v1/docs, a reference page of every operation rendered here from that document. Both are public:
they describe the API and hold no team's data, so a developer can read them before having a key."""
import json

from flask import jsonify
from flask import render_template

from app.api.framework import bp
from app.api.framework import document

METHODS = ("get", "post", "put", "patch", "delete")


def openapi_json():
    return jsonify(document())


def reference_page():
    spec = document()
    operations = []
    for path, item in spec["paths"].items():
        for method in METHODS:
            if method not in item:
                continue
            detail = item[method]
            body = detail.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
            answers = [(code, answer.get("description", ""),
                        answer.get("content", {}).get("application/json", {}).get("schema"))
                       for code, answer in sorted(detail.get("responses", {}).items())]
            operations.append({"method": method.upper(), "path": path, "summary": detail.get("summary", ""),
                               "id": detail.get("operationId", ""), "tags": detail.get("tags", []),
                               "parameters": detail.get("parameters", []), "body": _pretty(body),
                               "answers": [(code, text, _pretty(schema)) for code, text, schema in answers]})
    schemas = sorted((name, _pretty(schema)) for name, schema in spec.get("components", {}).get("schemas", {}).items())
    return render_template("api/reference.html", spec=spec, operations=operations, schemas=schemas, team=None)


def _pretty(schema):
    return json.dumps(schema, indent=2, ensure_ascii=False) if schema else ""


for view in (openapi_json, reference_page):
    view.public = True  # a description of the API, no team data: readable without a key or a sign-in
bp.add_url_rule("/openapi.json", "openapi_json", openapi_json)
bp.add_url_rule("/docs", "reference_page", reference_page)
