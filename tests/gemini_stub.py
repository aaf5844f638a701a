"""A stand-in for the Gemini REST API on 127.0.0.1, spoken to by the real google-genai client.

`POST /v1beta/models/{model}:generateContent` answers like Google's service does: candidates[0]
.content.parts[0].text, finishReason, safetyRatings, usageMetadata, modelVersion, responseId;
errors in Google's body shape {"error": {"code", "message", "status"}}. With nothing queued the
answer is JSON conforming to the request's generationConfig.responseSchema (strings such as
"Sample subject 1", arrays of 5 items), or plain text when there is no schema, so a page test
needs no setup. A test queues exact behaviour, one answer per call, first queued first used:

    gemini.reply(data={"items": [...]})         gemini.fail(429, retry_after=2)
    gemini.block()   gemini.truncate()   gemini.malformed()   gemini.empty()   gemini.hang(5)

Every request is recorded ({"path", "headers" (lower-case names), "body" (parsed), "raw"}), so a
test can count calls (a cache hit makes none) or search what was sent (`bodies_text()`).

OpenAiStub below is the same idea for `POST /v1/chat/completions`, for the OpenAI-compatible provider.
"""
import http.server
import json
import re
import threading
import uuid
from collections import deque

GENERATE_PATH = re.compile(r"^/(?:v1beta|v1)/models/([^/:?]+):generateContent(?:\?.*)?$")
STATUS_NAMES = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
                408: "DEADLINE_EXCEEDED", 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 502: "UNAVAILABLE",
                503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}
SAFETY_RATINGS = [{"category": category, "probability": "NEGLIGIBLE"}
                  for category in ("HARM_CATEGORY_SEXUALLY_EXPLICIT", "HARM_CATEGORY_HATE_SPEECH",
                                   "HARM_CATEGORY_HARASSMENT", "HARM_CATEGORY_DANGEROUS_CONTENT")]
SAFETY_FINISHES = {"SAFETY", "PROHIBITED_CONTENT", "BLOCKLIST", "SPII"}
DEFAULT_TEXT = "Sample answer from the Gemini stub."
DEFAULT_ITEMS = 5


def sample_for(schema, name="value", index=None):
    """A value conforming to a Gemini (upper-case types) or JSON-schema (lower-case) schema."""
    if not isinstance(schema, dict):
        return f"Sample {name}"
    # google-genai sends some keywords in snake case (min_items); Google reads both spellings.
    schema = {re.sub(r"_([a-z])", lambda m: m.group(1).upper(), key): value for key, value in schema.items()}
    kind = schema.get("type") or ("OBJECT" if "properties" in schema else "STRING")
    if isinstance(kind, list):
        kind = next((each for each in kind if str(each).lower() != "null"), "STRING")
    kind = str(kind).upper()
    if schema.get("enum"):
        return schema["enum"][0]
    if kind == "OBJECT":
        return {key: sample_for(sub, key, index) for key, sub in (schema.get("properties") or {}).items()}
    if kind == "ARRAY":
        count = max(int(schema.get("minItems", 0)), DEFAULT_ITEMS)
        if "maxItems" in schema:
            count = min(count, int(schema["maxItems"]))
        singular = name[:-1] if name.endswith("s") and len(name) > 1 else name
        return [sample_for(schema.get("items"), singular, number) for number in range(1, count + 1)]
    if kind == "INTEGER":
        return max(int(schema.get("minimum", 1)), 1) if index is None else index
    if kind == "NUMBER":
        return float(schema.get("minimum", 1.0))
    if kind == "BOOLEAN":
        return True
    text = f"Sample {name.replace('_', ' ')}" + (f" {index}" if index is not None else "")
    if "maxLength" in schema:
        text = text[:int(schema["maxLength"])]
    return text


class _Server:
    """A threaded loopback HTTP server that records each POST and lets a subclass answer it."""

    def __init__(self):
        self.requests = []
        self._queue = deque()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        stub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = None
                record = {"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()},
                          "body": body, "raw": raw.decode("utf-8", "replace")}
                with stub._lock:
                    stub.requests.append(record)
                    behaviour = stub._queue.popleft() if stub._queue else None
                status, headers, payload = stub.answer(record, behaviour)
                if status is None:
                    return  # the connection is dropped: the client must give up on its own
                try:
                    self.send_response(status)
                    for key, value in headers.items():
                        self.send_header(key, value)
                    self.send_header("Content-Type", "application/json; charset=UTF-8")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client timed out and hung up while we slept

            def do_GET(self):
                # Neither API has a GET here; recorded so a test sees a request that should never have come.
                with stub._lock:
                    stub.requests.append({"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()},
                                          "body": None, "raw": ""})
                self.send_error(405)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}"
        # A short poll so stop() returns at once rather than after serve_forever's default half second.
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()

    def _enqueue(self, behaviour):
        with self._lock:
            self._queue.append(behaviour)

    def _wait(self, seconds):
        """Sleep `seconds`, cut short by stop() so teardown never waits for a hung answer."""
        self._stopping.wait(seconds)

    def bodies_text(self):
        """Every request body received, as one string: for "this was never sent" asserts."""
        with self._lock:
            return "\n".join(record["raw"] for record in self.requests)

    def stop(self):
        self._stopping.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


class GeminiStub(_Server):
    def __init__(self, api_key=None):
        self.api_key = api_key  # when set, any other x-goog-api-key is refused as Google does (400)
        super().__init__()

    # --- what the next call answers -------------------------------------------------------------------
    def reply(self, data=None, text=None, input_tokens=120, output_tokens=80, finish_reason="STOP",
              model_version=None):
        """One answer: `data` as its JSON text, or `text` as it is (default: the schema's sample)."""
        self._enqueue({"kind": "reply", "data": data, "text": text, "input_tokens": input_tokens,
                       "output_tokens": output_tokens, "finish_reason": finish_reason,
                       "model_version": model_version})

    def fail(self, status, retry_after=None, message="The stub was told to fail.", retry_delay=None):
        """One HTTP error in Google's shape; `retry_after` a Retry-After header (seconds, or an HTTP date
        string), `retry_delay` seconds in a google.rpc.RetryInfo detail of the body."""
        self._enqueue({"kind": "fail", "status": status, "retry_after": retry_after, "message": message,
                       "retry_delay": retry_delay})

    def block(self, reason="SAFETY"):
        """One refused prompt: promptFeedback.blockReason and no candidates."""
        self._enqueue({"kind": "block", "reason": reason})

    def truncate(self, output_tokens=1024):
        """One answer cut off at max tokens: finishReason MAX_TOKENS, its JSON unfinished."""
        self._enqueue({"kind": "truncate", "output_tokens": output_tokens})

    def malformed(self):
        """One answer whose text is not the JSON asked for."""
        self._enqueue({"kind": "reply", "data": None, "text": "Here are your subject lines: {oops",
                       "input_tokens": 120, "output_tokens": 12, "finish_reason": "STOP", "model_version": None})

    def raw(self, body, status=200):
        """One answer with exactly this body text (a proxy's page, something that is not the API)."""
        self._enqueue({"kind": "raw", "body": body, "status": status})

    def empty(self):
        """One answer with no candidates and no reason given."""
        self._enqueue({"kind": "empty"})

    def hang(self, seconds):
        """One answer that comes only after `seconds` (the provider's timeout should fire first)."""
        self._enqueue({"kind": "hang", "seconds": seconds})

    # --- answering ------------------------------------------------------------------------------------
    def answer(self, record, behaviour):
        match = GENERATE_PATH.match(record["path"])
        if not match:
            return self._error(404, f"Method not found: {record['path'].split('?')[0]}")
        model = match.group(1)
        if self.api_key is not None and record["headers"].get("x-goog-api-key") != self.api_key:
            return self._error(400, "API key not valid. Please pass a valid API key.", details=[
                {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID",
                 "domain": "googleapis.com"}])
        behaviour = behaviour or {"kind": "reply", "data": None, "text": None, "input_tokens": 120,
                                  "output_tokens": 80, "finish_reason": "STOP", "model_version": None}
        kind = behaviour["kind"]
        if kind == "fail":
            headers = {"Retry-After": str(behaviour["retry_after"])} if behaviour["retry_after"] is not None else {}
            details = None
            if behaviour["retry_delay"] is not None:
                details = [{"@type": "type.googleapis.com/google.rpc.RetryInfo",
                            "retryDelay": f"{behaviour['retry_delay']}s"}]
            return self._error(behaviour["status"], behaviour["message"], headers=headers, details=details)
        if kind == "block":
            return self._json(200, {"promptFeedback": {"blockReason": behaviour["reason"],
                                                       "safetyRatings": SAFETY_RATINGS},
                                    "usageMetadata": {"promptTokenCount": 120, "totalTokenCount": 120},
                                    "modelVersion": model, "responseId": uuid.uuid4().hex[:22]})
        if kind == "raw":
            return behaviour["status"], {}, behaviour["body"].encode()
        if kind == "empty":
            return self._json(200, {"candidates": [], "usageMetadata": {"promptTokenCount": 120,
                                                                         "totalTokenCount": 120},
                                    "modelVersion": model, "responseId": uuid.uuid4().hex[:22]})
        if kind == "hang":
            self._wait(behaviour["seconds"])
            return self._candidate(model, self.default_text(record["body"]), 120, 80, "STOP")
        if kind == "truncate":
            whole = self.default_text(record["body"])
            return self._candidate(model, whole[:max(1, len(whole) // 2)], 120, behaviour["output_tokens"],
                                   "MAX_TOKENS")
        text = behaviour["text"]
        if text is None:
            text = json.dumps(behaviour["data"]) if behaviour["data"] is not None \
                else self.default_text(record["body"])
        return self._candidate(behaviour["model_version"] or model, text, behaviour["input_tokens"],
                               behaviour["output_tokens"], behaviour["finish_reason"])

    @staticmethod
    def response_schema(body):
        config = (body or {}).get("generationConfig") or {}
        return config.get("responseSchema") or config.get("responseJsonSchema")

    def default_text(self, body):
        schema = self.response_schema(body)
        if schema is None:
            return DEFAULT_TEXT
        return json.dumps(sample_for(schema, "items"))

    def _candidate(self, model, text, input_tokens, output_tokens, finish_reason):
        candidate = {"content": {"parts": [{"text": text}], "role": "model"}, "finishReason": finish_reason,
                     "index": 0, "safetyRatings": SAFETY_RATINGS}
        if finish_reason in SAFETY_FINISHES:
            candidate["content"] = {"role": "model"}  # a stopped answer comes back without its parts
        return self._json(200, {
            "candidates": [candidate],
            "usageMetadata": {"promptTokenCount": input_tokens, "candidatesTokenCount": output_tokens,
                              "totalTokenCount": input_tokens + output_tokens,
                              "promptTokensDetails": [{"modality": "TEXT", "tokenCount": input_tokens}]},
            "modelVersion": model, "responseId": uuid.uuid4().hex[:22]})

    @staticmethod
    def _json(status, payload, headers=None):
        return status, headers or {}, json.dumps(payload).encode()

    def _error(self, status, message, headers=None, details=None):
        error = {"code": status, "message": message, "status": STATUS_NAMES.get(status, "UNKNOWN")}
        if details:
            error["details"] = details
        return self._json(status, {"error": error}, headers)


class OpenAiStub(_Server):
    """`POST /v1/chat/completions` as an OpenAI-compatible server answers it; queue reply() / fail()."""

    redirect_to = None  # the Location a queued 3xx fail() points at

    def reply(self, content=None, prompt_tokens=100, completion_tokens=50, finish_reason="stop"):
        self._enqueue({"kind": "reply", "content": content, "prompt_tokens": prompt_tokens,
                       "completion_tokens": completion_tokens, "finish_reason": finish_reason})

    def fail(self, status, retry_after=None, message="The stub was told to fail."):
        self._enqueue({"kind": "fail", "status": status, "retry_after": retry_after, "message": message})

    def hang(self, seconds):
        self._enqueue({"kind": "hang", "seconds": seconds})

    def answer(self, record, behaviour):
        if record["path"] != "/v1/chat/completions":
            return 404, {}, json.dumps({"error": {"message": "Not found"}}).encode()
        behaviour = behaviour or {"kind": "reply", "content": None, "prompt_tokens": 100,
                                  "completion_tokens": 50, "finish_reason": "stop"}
        if behaviour["kind"] == "fail":
            headers = {"Retry-After": str(behaviour["retry_after"])} if behaviour["retry_after"] is not None else {}
            if self.redirect_to and 300 <= behaviour["status"] < 400:
                headers["Location"] = self.redirect_to
            return behaviour["status"], headers, json.dumps(
                {"error": {"message": behaviour["message"], "type": "stub_error"}}).encode()
        if behaviour["kind"] == "hang":
            self._wait(behaviour["seconds"])
            behaviour = {"content": None, "prompt_tokens": 100, "completion_tokens": 50, "finish_reason": "stop"}
        body = record["body"] or {}
        content = behaviour["content"]
        if content is None:
            schema = ((body.get("response_format") or {}).get("json_schema") or {}).get("schema")
            content = json.dumps(sample_for(schema, "items")) if schema else DEFAULT_TEXT
        return 200, {}, json.dumps({
            "id": "chatcmpl-" + uuid.uuid4().hex[:12], "object": "chat.completion", "model": body.get("model"),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                         "finish_reason": behaviour["finish_reason"]}],
            "usage": {"prompt_tokens": behaviour["prompt_tokens"],
                      "completion_tokens": behaviour["completion_tokens"],
                      "total_tokens": behaviour["prompt_tokens"] + behaviour["completion_tokens"]}}).encode()
