"""Versioned prompt files (app/ai/prompts.py): every file in the repository loads, a broken one fails loudly
with its name, versions sort by number, inputs are checked in words, and rendering keeps what the writer typed
as text."""
import json

import pytest

from app.ai import prompts
from app.config import ROOT

GOOD_FRONT = '''description = "Say hello."
model = "default"
temperature = 0.5
max_output_tokens = 200
schema = \'\'\'{"type": "object", "properties": {"greeting": {"type": "string"}}, "required": ["greeting"]}\'\'\'

[inputs.name]
kind = "text"
max = 40
required = true
label = "Name"

[inputs.points]
kind = "list"
max = 30
max_items = 3
label = "Key points"

[inputs.tone]
kind = "choice"
choices = ["warm", "formal"]
default = "warm"
'''
GOOD_BODY = '''You greet people.
===
Greet {{ name }} in a {{ tone }} tone.
{% for point in points %}
- {{ point }}
{% endfor %}
'''


def write(folder, name, version, front=GOOD_FRONT, body=GOOD_BODY):
    path = folder / name / f"{version}.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"+++\n{front}+++\n{body}", encoding="utf-8")
    return path


@pytest.fixture
def prompt_dir(tmp_path, monkeypatch):
    """A prompts folder of the test's own, in place of the repository's."""
    monkeypatch.setattr(prompts, "PROMPTS_DIR", tmp_path)
    return tmp_path


def test_every_prompt_file_in_the_repository_loads():
    files = sorted(prompts.PROMPTS_DIR.glob("*/v*.md"))
    assert files, "no prompt files found"
    loaded = prompts.load_all()
    assert len(loaded) == len(files)
    for path in files:
        prompt = prompts.load_file(path)
        assert prompt.description and prompt.system and prompt.template, path
        assert prompts.schema_problem(prompt.schema) == "" if prompt.schema else True
        assert prompt.path == str(path.relative_to(ROOT))
    assert [prompt.ref for prompt in prompts.all_prompts()] == \
        sorted((prompt.ref for prompt in loaded.values()), key=lambda ref: (ref.split("@")[0], int(ref.split("@v")[1])))
    assert "subject_lines@v1" in [prompt.ref for prompt in prompts.all_prompts()]


def test_subject_lines_v1_asks_for_five_subjects_with_preheaders():
    prompt = prompts.get("subject_lines", "v1")
    assert (prompt.name, prompt.version, prompt.model) == ("subject_lines", "v1", "default")
    assert set(prompt.inputs) == {"brief", "content", "language", "count"}
    assert prompt.inputs["brief"]["max"] == 2000 and not prompt.inputs["brief"]["required"]
    assert prompt.inputs["content"]["max"] == 8000 and not prompt.inputs["content"]["required"]
    assert prompt.inputs["count"]["kind"] == "choice" and prompt.inputs["count"]["choices"] == ["5"]
    assert prompt.at_least_one_of == ("brief", "content")
    items = prompt.schema["properties"]["items"]
    assert prompt.schema["required"] == ["items"]
    assert (items["type"], items["minItems"], items["maxItems"]) == ("array", 5, 5)
    assert items["items"]["properties"] == {"subject": {"type": "string", "description": items["items"]["properties"]
                                                        ["subject"]["description"]},
                                            "preheader": items["items"]["properties"]["preheader"]}
    assert "78" in items["items"]["properties"]["subject"]["description"]
    system = prompt.system.lower()
    for rule in ("subject lines for an email newsletter", "language of the content", "spam wording", "all caps",
                 '"re:"', "no emoji", "never invent facts", "78 characters"):
        assert rule in system, rule


def test_rendering_keeps_what_the_writer_typed_as_text():
    prompt = prompts.get("subject_lines")
    system, user = prompts.render(prompt, {"brief": "Hi {{ contact.email }} {% raw %}", "language": "Dutch"})
    assert system == prompt.system
    assert "Hi {{ contact.email }} {% raw %}" in user and "Language: Dutch" in user
    assert "Write 5 subject lines" in user and "content" not in user.lower().split("brief")[0]
    assert "The email's content" not in user and "\n\n\n" not in user


def test_content_alone_is_enough_and_appears_in_the_message():
    _, user = prompts.render(prompts.get("subject_lines"), {"content": "Tulips are in."})
    assert "The email's content:" in user and "Tulips are in." in user and "brief" not in user


def test_versions_sort_by_number_and_the_latest_is_the_default(prompt_dir):
    for version in ("v1", "v2", "v9", "v10"):
        write(prompt_dir, "hello", version, front=GOOD_FRONT.replace("Say hello.", f"Hello {version}"))
    assert [prompt.version for prompt in prompts.all_prompts()] == ["v1", "v2", "v9", "v10"]
    assert prompts.get("hello").version == "v10" and prompts.get("hello").description == "Hello v10"
    assert prompts.get("hello", "v9").version == "v9"
    assert prompts.version_number("v10") > prompts.version_number("v9")


@pytest.mark.parametrize("front, body, reason", [
    ('description = "x\n', GOOD_BODY, "not valid TOML"),
    (GOOD_FRONT, "You greet people.\nGreet {{ name }}.\n", 'no line "==="'),
    (GOOD_FRONT.replace('kind = "list"', 'kind = "essay"'), GOOD_BODY, 'unknown kind "essay"'),
    (GOOD_FRONT.replace('"type": "string"', '"type": "text"'), GOOD_BODY, "the schema is not valid"),
    (GOOD_FRONT.replace('"required": ["greeting"]}', '"required": ["greeting"]'), GOOD_BODY, "not valid JSON"),
    (GOOD_FRONT.replace('"required": ["greeting"]', '"required": ["farewell"]'), GOOD_BODY, "required"),
    (GOOD_FRONT.replace('{"greeting": {"type": "string"}}', '{"greeting": {"type": "array"}}'), GOOD_BODY,
     "without \"items\""),
    (GOOD_FRONT.replace('"properties"', '"patternProperties"'), GOOD_BODY, "unsupported key"),
    ("temprature = 0.3\n" + GOOD_FRONT, GOOD_BODY, "unknown front matter key(s): temprature"),
    (GOOD_FRONT.replace("temperature = 0.5", "temperature = 5"), GOOD_BODY, "temperature"),
    (GOOD_FRONT.replace("max = 40", "max = 0"), GOOD_BODY, "max must be a whole number"),
    (GOOD_FRONT.replace('default = "warm"', 'default = "sarcastic"'), GOOD_BODY, "not one of its choices"),
    ('at_least_one_of = ["nickname"]\n' + GOOD_FRONT, GOOD_BODY, "at_least_one_of must list declared inputs"),
    (GOOD_FRONT, GOOD_BODY.replace("{{ name }}", "{{ nmae }}"), "undeclared input(s): nmae"),
    (GOOD_FRONT, GOOD_BODY.replace("{% endfor %}", ""), "does not compile"),
    (GOOD_FRONT, "===\nGreet {{ name }}.\n", "system text is empty"),
])
def test_a_broken_prompt_file_fails_loudly_with_its_name(prompt_dir, front, body, reason):
    path = write(prompt_dir, "hello", "v3", front=front, body=body)
    with pytest.raises(prompts.PromptFileError) as broken:
        prompts.load_file(path)
    assert str(path) in broken.value.message and reason in broken.value.message
    with pytest.raises(prompts.PromptFileError, match="v3.md"):
        prompts.get("hello")  # any use of prompts fails, not only this one's


def test_a_file_without_front_matter_or_with_a_bad_name_fails(prompt_dir):
    path = prompt_dir / "hello" / "v1.md"
    path.parent.mkdir()
    path.write_text("You greet people.\n===\nHi\n")
    with pytest.raises(prompts.PromptFileError, match='first line must be "\\+\\+\\+"'):
        prompts.load_file(path)
    path.write_text("+++\ndescription = 'x'\nYou greet people.\n===\nHi\n")
    with pytest.raises(prompts.PromptFileError, match="no closing"):
        prompts.load_file(path)
    named = write(prompt_dir, "hello", "version-2")
    with pytest.raises(prompts.PromptFileError, match="must be v<number>.md"):
        prompts.load_file(named)


def test_inputs_are_cleaned_and_checked_in_words(prompt_dir):
    write(prompt_dir, "hello", "v1")
    prompt = prompts.get("hello")
    assert prompts.clean_inputs(prompt, {"name": "  Ada ", "points": "one\n\n two \n"}) == \
        {"name": "Ada", "points": ["one", "two"], "tone": "warm"}
    _, user = prompts.render(prompt, {"name": "Ada", "points": ["one", "two"], "tone": "formal"})
    assert user == "Greet Ada in a formal tone.\n- one\n- two"
    refusals = [
        ({}, "name", "Name is required."),
        ({"name": "x" * 41}, "name", "Name is 41 characters long; at most 40 fit. Shorten it by 1."),
        ({"name": "Ada", "points": ["a", "b", "c", "d"]}, "points", "Key points has 4 items; at most 3 fit."),
        ({"name": "Ada", "points": ["x" * 20, "y" * 20]}, "points", "Key points is 40 characters long; at most 30 fit."),
        ({"name": "Ada", "points": [1, 2]}, "points", "Key points must be a list of lines."),
        ({"name": "Ada", "tone": "sarcastic"}, "tone", "Tone must be one of: warm, formal."),
        ({"name": ["Ada"]}, "name", "Name must be text."),
        ({"name": "Ada", "email": "ada@example.com"}, "email", "The hello prompt takes no input called “email”"),
    ]
    for inputs, field, words in refusals:
        with pytest.raises(prompts.AiError) as refused:
            prompts.clean_inputs(prompt, inputs)
        assert refused.value.field == field and refused.value.kind == "input"
        assert refused.value.message.startswith(words), refused.value.message


def test_unknown_prompts_and_versions_are_refused_in_words(prompt_dir):
    write(prompt_dir, "hello", "v1")
    with pytest.raises(prompts.AiError, match="no prompt called “goodbye”. Prompts: hello."):
        prompts.get("goodbye")
    with pytest.raises(prompts.AiError, match=r"has no version v2 \(it has v1\)"):
        prompts.get("hello", "v2")


def test_the_schema_check_takes_what_gemini_takes():
    good = {"type": "object", "properties": {"items": {"type": "array", "minItems": 1, "maxItems": 3, "items": {
        "type": "object", "properties": {"text": {"type": "string", "enum": ["a", "b"]}}}}}}
    assert prompts.schema_problem(good) == ""
    assert "minItems and maxItems" in prompts.schema_problem(
        {"type": "array", "items": {"type": "string"}, "minItems": 4, "maxItems": 2})
    assert "must be an object" in prompts.schema_problem(["type"])
    assert "enum" in prompts.schema_problem({"type": "string", "enum": []})
    assert json.loads(json.dumps(good)) == good
