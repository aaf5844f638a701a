"""Versioned prompts: each one is a file in the repository, app/ai/prompts/<name>/v<N>.md.

A file is TOML front matter between two lines "+++", then the system text, a line "===", then the user
message as a Jinja2 template whose variables are the prompt's declared inputs:

    +++
    description = "Five subject lines ..."
    model = "default"             # "default" = the instance's model (Admin > AI), or a model name
    temperature = 0.7
    max_output_tokens = 1024
    at_least_one_of = ["brief", "content"]     # optional: at least one of these must be filled in
    schema = '''{ JSON schema of the output }'''   # optional: absent = plain text output
    [inputs.brief]
    kind = "text"                 # "text" | "list" | "choice"
    max = 2000                    # characters (a list: all its items together)
    required = false
    label = "Brief"               # how messages name the input
    +++
    system text
    ===
    user template ({{ brief }} ...)

A change to a prompt is a new file (v2.md next to v1.md): the old version stays, so every stored generation
still names the exact text it came from (name@version). Versions sort by number, v10 after v9.

Every file is read and checked the first time any prompt is asked for; a broken one (bad TOML, no "===",
an unknown input kind, an invalid schema, a template naming an undeclared input) raises PromptFileError
naming the file, so a mistake fails the first test that touches AI instead of a writer's request.

Only the user template is rendered; the system text is sent as written. Inputs are values in the template,
never templates themselves, so "{{ ... }}" typed by a writer reaches the model as text.
"""
import json
import re
import tomllib
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path

import jinja2
from jinja2 import meta

from app.config import ROOT
from app.errors import Problem

PROMPTS_DIR = Path(__file__).resolve().parent / "prompts"
FRONT_MATTER = "+++"
SYSTEM_END = "==="
VERSION_FILE = re.compile(r"v([1-9][0-9]*)\.md")
PROMPT_NAME = re.compile(r"[a-z][a-z0-9_]*")

INPUT_KINDS = ("text", "list", "choice")
TOP_KEYS = {"description", "model", "temperature", "max_output_tokens", "schema", "inputs", "at_least_one_of"}
INPUT_KEYS = {"kind", "max", "required", "choices", "default", "label", "max_items"}
DEFAULT_MAX = 2000
DEFAULT_MAX_ITEMS = 20

# The part of JSON Schema a Gemini response_schema understands, and so the part a prompt may use.
SCHEMA_TYPES = {"object", "array", "string", "integer", "number", "boolean"}
SCHEMA_KEYS = {"type", "properties", "required", "items", "minItems", "maxItems", "enum", "description",
               "nullable", "format", "minimum", "maximum", "propertyOrdering"}


class AiError(Problem):
    """A refusal of an AI request, in words for the writer. `kind` says which check refused it:
    "off" | "no_key" | "budget" | "rate_limited" | "input" | "provider" | "unknown_prompt"."""

    def __init__(self, message, kind="input", field=None):
        super().__init__(message, field=field)
        self.kind = kind


class PromptFileError(Problem):
    """A prompt file in the repository is broken; the message names the file and what is wrong."""


@dataclass(frozen=True)
class Prompt:
    name: str
    version: str                # "v1"
    model: str                  # "default" or a model name
    temperature: float
    max_output_tokens: int
    description: str
    inputs: dict = field(compare=False)   # {name: {"kind", "max", "required", "choices", "default", "label", "max_items"}}
    schema: dict | None = field(compare=False)
    system: str
    template: str
    at_least_one_of: tuple = ()
    path: str = ""

    @property
    def ref(self):
        """"subject_lines@v1": how generations and the CLI name it."""
        return f"{self.name}@{self.version}"

    @property
    def number(self):
        return int(self.version[1:])


_environment = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False,
                                  trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=False)


def version_number(version):
    """10 for "v10": versions compare as numbers."""
    match = re.fullmatch(r"v([0-9]+)", version or "")
    return int(match.group(1)) if match else -1


def load_file(path, name=None):
    """The Prompt in the file at `path`; PromptFileError naming the file when anything in it is wrong."""
    path = Path(path)
    name = name or path.parent.name
    where = _shown(path)

    def broken(reason):
        return PromptFileError(f"Prompt file {where}: {reason}")

    match = VERSION_FILE.fullmatch(path.name)
    if not match:
        raise broken('the file name must be v<number>.md, e.g. "v2.md"')
    if not PROMPT_NAME.fullmatch(name):
        raise broken(f'the folder name "{name}" must be lower-case letters, digits and _')
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise broken(f"cannot be read ({exc})") from None
    lines = text.splitlines()
    if not lines or lines[0].strip() != FRONT_MATTER:
        raise broken(f'the first line must be "{FRONT_MATTER}" (the front matter starts there)')
    try:
        front_end = next(i for i in range(1, len(lines)) if lines[i].strip() == FRONT_MATTER)
    except StopIteration:
        raise broken(f'the front matter has no closing "{FRONT_MATTER}" line') from None
    try:
        front = tomllib.loads("\n".join(lines[1:front_end]))
    except tomllib.TOMLDecodeError as exc:
        raise broken(f"the front matter is not valid TOML ({exc})") from None
    body = lines[front_end + 1:]
    try:
        split = next(i for i, line in enumerate(body) if line.strip() == SYSTEM_END)
    except StopIteration:
        raise broken(f'no line "{SYSTEM_END}" between the system text and the user template') from None
    system = "\n".join(body[:split]).strip()
    template = "\n".join(body[split + 1:]).strip()
    if not system:
        raise broken("the system text is empty")
    if not template:
        raise broken("the user template is empty")

    unknown = set(front) - TOP_KEYS
    if unknown:
        raise broken(f"unknown front matter key(s): {', '.join(sorted(unknown))}")
    inputs = _inputs(front.get("inputs", {}), broken)
    at_least_one_of = front.get("at_least_one_of", [])
    if not isinstance(at_least_one_of, list) or any(item not in inputs for item in at_least_one_of):
        raise broken("at_least_one_of must list declared inputs")
    model = front.get("model", "default")
    temperature = front.get("temperature", 0.7)
    max_output_tokens = front.get("max_output_tokens", 1024)
    if not isinstance(model, str) or not model.strip():
        raise broken('model must be "default" or a model name')
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not 0 <= temperature <= 2:
        raise broken("temperature must be a number from 0 to 2")
    if isinstance(max_output_tokens, bool) or not isinstance(max_output_tokens, int) or max_output_tokens < 1:
        raise broken("max_output_tokens must be a whole number above 0")
    schema = None
    if "schema" in front:
        schema = _schema(front["schema"], broken)
    try:
        parsed = _environment.parse(template)
    except jinja2.TemplateSyntaxError as exc:
        raise broken(f"the user template does not compile (line {exc.lineno}: {exc.message})") from None
    undeclared = meta.find_undeclared_variables(parsed) - set(inputs)
    if undeclared:
        raise broken(f"the user template uses undeclared input(s): {', '.join(sorted(undeclared))}")
    return Prompt(name=name, version=f"v{match.group(1)}", model=model.strip(), temperature=float(temperature),
                  max_output_tokens=max_output_tokens, description=str(front.get("description", "")),
                  inputs=inputs, schema=schema, system=system, template=template,
                  at_least_one_of=tuple(at_least_one_of), path=where)


def _shown(path):
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def _inputs(declared, broken):
    if not isinstance(declared, dict):
        raise broken("inputs must be tables: [inputs.<name>]")
    inputs = {}
    for name, spec in declared.items():
        if not PROMPT_NAME.fullmatch(name) or not isinstance(spec, dict):
            raise broken(f'input "{name}" must be a table [inputs.{name}] with a lower-case name')
        unknown = set(spec) - INPUT_KEYS
        if unknown:
            raise broken(f'input "{name}" has unknown key(s): {", ".join(sorted(unknown))}')
        kind = spec.get("kind", "text")
        if kind not in INPUT_KINDS:
            raise broken(f'input "{name}" has an unknown kind "{kind}" (one of: {", ".join(INPUT_KINDS)})')
        limit = spec.get("max", DEFAULT_MAX)
        max_items = spec.get("max_items", DEFAULT_MAX_ITEMS)
        for key, value in (("max", limit), ("max_items", max_items)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise broken(f'input "{name}": {key} must be a whole number above 0')
        required = spec.get("required", False)
        if not isinstance(required, bool):
            raise broken(f'input "{name}": required must be true or false')
        choices = spec.get("choices", [])
        if not isinstance(choices, list) or not all(isinstance(choice, str) for choice in choices):
            raise broken(f'input "{name}": choices must be a list of strings')
        if kind == "choice" and not choices:
            raise broken(f'input "{name}" is a choice without choices')
        default = spec.get("default")
        if default is not None and kind == "choice" and default not in choices:
            raise broken(f'input "{name}": the default "{default}" is not one of its choices')
        label = spec.get("label", name.replace("_", " ").capitalize())
        inputs[name] = {"kind": kind, "max": limit, "required": required, "choices": list(choices),
                        "default": default, "label": str(label), "max_items": max_items}
    return inputs


def _schema(text, broken):
    if not isinstance(text, str):
        raise broken("schema must be a string holding JSON (a TOML literal string ''' ... ''')")
    try:
        schema = json.loads(text)
    except ValueError as exc:
        raise broken(f"the schema is not valid JSON ({exc})") from None
    problem = schema_problem(schema)
    if problem:
        raise broken(f"the schema is not valid: {problem}")
    return schema


def schema_problem(schema, where="the schema"):
    """What is wrong with a JSON schema for a structured answer ("" when nothing): the subset a Gemini
    response_schema takes (types, properties, required, items, enum, item counts)."""
    if not isinstance(schema, dict):
        return f"{where} must be an object"
    unknown = set(schema) - SCHEMA_KEYS
    if unknown:
        return f"{where} has unsupported key(s): {', '.join(sorted(unknown))}"
    kind = schema.get("type")
    if kind not in SCHEMA_TYPES:
        return f'{where} needs a "type", one of: {", ".join(sorted(SCHEMA_TYPES))}'
    if kind == "object":
        properties = schema.get("properties")
        if not isinstance(properties, dict) or not properties:
            return f'{where} is an object without "properties"'
        for name, sub in properties.items():
            problem = schema_problem(sub, f"{where}.{name}")
            if problem:
                return problem
        required = schema.get("required", [])
        if not isinstance(required, list) or any(name not in properties for name in required):
            return f'{where}: "required" must list its properties'
    elif "properties" in schema or "required" in schema:
        return f'{where} has "properties" but is not an object'
    if kind == "array":
        if "items" not in schema:
            return f'{where} is an array without "items"'
        problem = schema_problem(schema["items"], f"{where}[]")
        if problem:
            return problem
        low, high = schema.get("minItems", 0), schema.get("maxItems")
        if not isinstance(low, int) or (high is not None and (not isinstance(high, int) or high < low)):
            return f"{where}: minItems and maxItems must be whole numbers, min ≤ max"
    elif "items" in schema:
        return f'{where} has "items" but is not an array'
    if "enum" in schema and (not isinstance(schema["enum"], list) or not schema["enum"]):
        return f'{where}: "enum" must be a list of values'
    return ""


def load_all(directory=PROMPTS_DIR):
    """{(name, version): Prompt} for every prompt file under `directory`, checked."""
    found = {}
    for folder in sorted(Path(directory).iterdir()):
        if not folder.is_dir() or folder.name.startswith(("_", ".")):
            continue
        for path in sorted(folder.glob("*.md")):
            prompt = load_file(path, folder.name)
            found[(prompt.name, prompt.version)] = prompt
    return found


_loaded = {}


def _repository_prompts():
    """Every prompt of PROMPTS_DIR, read and checked once per process (the files ship with the code)."""
    directory = PROMPTS_DIR
    if directory not in _loaded:
        _loaded[directory] = load_all(directory)
    return _loaded[directory]


def all_prompts():
    """Every version of every prompt, by name then version number."""
    return sorted(_repository_prompts().values(), key=lambda prompt: (prompt.name, prompt.number))


def names():
    return sorted({prompt.name for prompt in all_prompts()})


def get(name, version=None):
    """The prompt `name` at `version` ("v2"), or its latest version when None; AiError when unknown."""
    versions = [prompt for prompt in all_prompts() if prompt.name == name]
    if not versions:
        raise AiError(f"There is no prompt called “{name}”. Prompts: {', '.join(names()) or 'none'}.",
                      kind="unknown_prompt", field="prompt")
    if version is None:
        return versions[-1]
    for prompt in versions:
        if prompt.version == version:
            return prompt
    raise AiError(f"The prompt “{name}” has no version {version} "
                  f"(it has {', '.join(prompt.version for prompt in versions)}).",
                  kind="unknown_prompt", field="prompt")


def _empty(spec):
    if spec["kind"] == "list":
        return []
    if spec["kind"] == "choice":
        return spec["default"] if spec["default"] is not None else ""
    return ""


def _filled(value):
    return bool(value) if not isinstance(value, str) else bool(value.strip())


def clean_inputs(prompt, inputs):
    """The inputs as the prompt takes them: every declared input present (an absent one empty or its
    default), text stripped, a list as a list of non-blank lines. AiError(kind="input", field=<input>)
    naming the problem in words: an input the prompt does not take, a wrong type, too long, a required
    one missing, a value not among the choices, none of `at_least_one_of` filled in."""
    inputs = dict(inputs or {})
    unknown = sorted(set(inputs) - set(prompt.inputs))
    if unknown:
        raise AiError(f"The {prompt.name} prompt takes no input called “{unknown[0]}” "
                      f"(it takes {', '.join(prompt.inputs) or 'none'}).", field=unknown[0])
    cleaned = {}
    for name, spec in prompt.inputs.items():
        value = inputs.get(name)
        label = spec["label"]
        if value is None:
            value = _empty(spec)
        elif spec["kind"] == "list":
            if isinstance(value, str):
                value = value.splitlines()
            if not isinstance(value, (list, tuple)) or not all(isinstance(item, str) for item in value):
                raise AiError(f"{label} must be a list of lines.", field=name)
            value = [item.strip() for item in value if item.strip()]
            if len(value) > spec["max_items"]:
                raise AiError(f"{label} has {len(value):,} items; at most {spec['max_items']:,} fit.", field=name)
            length = sum(len(item) for item in value)
            if length > spec["max"]:
                raise AiError(f"{label} is {length:,} characters long; at most {spec['max']:,} fit.", field=name)
        else:
            if not isinstance(value, str):
                raise AiError(f"{label} must be text.", field=name)
            value = value.strip()
            if spec["kind"] == "choice":
                if not value and spec["default"] is not None:
                    value = spec["default"]
                if value and value not in spec["choices"]:
                    raise AiError(f"{label} must be one of: {', '.join(spec['choices'])}.", field=name)
            elif len(value) > spec["max"]:
                raise AiError(f"{label} is {len(value):,} characters long; at most {spec['max']:,} fit. "
                              f"Shorten it by {len(value) - spec['max']:,}.", field=name)
        if spec["required"] and not _filled(value):
            raise AiError(f"{label} is required.", field=name)
        cleaned[name] = value
    if prompt.at_least_one_of and not any(_filled(cleaned[name]) for name in prompt.at_least_one_of):
        labels = [prompt.inputs[name]["label"].lower() for name in prompt.at_least_one_of]
        raise AiError(f"Fill in the {' or the '.join(labels)}: the {prompt.name.replace('_', ' ')} "
                      f"need at least one of them.", field=prompt.at_least_one_of[0])
    return cleaned


def render(prompt, inputs):
    """(system, user): the system text as written and the user template rendered with the inputs
    (cleaned first, so every declared input is defined)."""
    values = clean_inputs(prompt, inputs)
    user = _environment.from_string(prompt.template).render(**values)
    user = re.sub(r"\n{3,}", "\n\n", user).strip()
    return prompt.system, user
