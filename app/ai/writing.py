"""Drafts from a brief and rewrites: the inputs a job starts with, the checks every proposal passes before it
is shown, and accepting or undoing one on a draft campaign.

A proposal is what the model answered, checked again every time it is shown or accepted (the stored answer
is never trusted): HTML goes through the same cleaning and sandbox checks as a person's body
(prepare.clean_source), a block draft becomes a document through the block schema (a block that fails is left
out with a note), and every merge tag must name a field this team has. Accepting keeps what it replaced:
a block email through the block store's undo history, anything else on the job (AiJob.previous), so one
click puts it back.
"""
import dataclasses
import hashlib
import html
import re

from jinja2 import nodes
from jinja2.exceptions import TemplateSyntaxError

from app.ai import jobs
from app.ai import spam_check
from app.brand.services import brand_for
from app.contacts.fields import fields_of
from app.content import prepare
from app.content import sanitize
from app.content.blocks import ops
from app.content.blocks import schema
from app.content.blocks import store
from app.content.blocks.richtext import clean_rich_text
from app.content.blocks.schema import BlockProblem
from app.content.fields import sample_contact
from app.content.sandbox import LINK_VARIABLES
from app.content.sandbox import RenderError
from app.content.sandbox import environment
from app.db import db
from app.errors import Problem
from app.models import AiJob
from app.models import Campaign
from app.models import utcnow

TONES = (("friendly", "Friendly"), ("professional", "Professional"), ("enthusiastic", "Enthusiastic"),
         ("calm", "Calm"), ("playful", "Playful"), ("formal", "Formal"))
LENGTHS = (("short", "Short (60 to 120 words)"), ("medium", "Medium (150 to 250 words)"),
           ("long", "Long (300 to 500 words)"))
BODY_KINDS = (("blocks", "Blocks"), ("html", "HTML"), ("markdown", "Markdown"))
REWRITE_MODES = (("shorter", "Shorter"), ("friendlier", "Friendlier"), ("formal", "More formal"),
                 ("grammar", "Fix grammar and spelling"), ("translate", "Translate"))
LANGUAGES = ("English", "French", "German", "Spanish", "Italian", "Portuguese", "Dutch", "Polish", "Swedish",
             "Danish", "Norwegian", "Finnish", "Czech", "Greek", "Turkish", "Japanese", "Chinese (simplified)",
             "Korean", "Arabic", "Hindi", "Ukrainian")
OTHER_LANGUAGE = "other"

# What a writer may type into a brief (the prompt files declare the same numbers).
DRAFT_LIMITS = {"goal": ("The goal", 500), "audience": ("The audience", 300), "key_points": ("The key points", 2000),
                "cta_text": ("The call to action", 80), "cta_url": ("The call to action's address", 500)}
MAX_LANGUAGE = 60
MAX_REWRITE_TEXT = 20000
MAX_TAG_LIST = 4000  # the draft prompt's merge_tags input

# The contact fields every team has (app/content/fields.py), then the rest a body may name.
CONTACT_FIELDS = ("first_name", "last_name", "name", "email")
OTHER_ATTRIBUTES = {"campaign": ("subject", "from_name", "from_email"), "team": ("name",)}
TOP_LEVEL_NAMES = ("postal_address",) + LINK_VARIABLES

_TAG_SPACES = re.compile(r"\s+")
_PARAGRAPHS = re.compile(r"\n\s*\n")
# Raw HTML in a Markdown answer that email cannot keep: refused rather than stored (Markdown is stored as written).
_UNSAFE_MARKDOWN = re.compile(r"<\s*/?\s*(?:script|style|iframe|object|embed|form|input|svg|math|template|meta|link|base)\b"
                              r"|\son[a-z]+\s*=\s*[\"'\w]|javascript:|vbscript:|data:text/html", re.IGNORECASE)
_CONDITION = re.compile(r"\{%[-+]?\s*(?:if|elif)\b(.*?)[-+]?%\}$", re.DOTALL)


class WritingError(Problem):
    """A brief, a rewrite or an accept refused, in words for the writer."""


@dataclasses.dataclass
class Proposal:
    """A checked answer, ready to show beside the current content (or the words saying why it cannot be used)."""
    job_kind: str                # "draft" | "rewrite"
    body_kind: str               # "html" | "markdown" | "blocks" | "plain" (a heading)
    subject: str = ""
    preheader: str = ""
    body: str = ""               # what would be stored: cleaned HTML, Markdown, or the blocks' rendered HTML
    blocks: dict | None = None   # the validated document of a block draft
    text: str = ""               # the plain-text version, or the rewritten text itself
    replacement: str = ""        # a rewrite: the new text of the slice, the block or the body
    current: str = ""            # a rewrite: the text it replaces
    notes: list = dataclasses.field(default_factory=list)   # blocks left out, tags lost or added
    flags: list = dataclasses.field(default_factory=list)   # spam wording
    error: str = ""              # set: the proposal cannot be used, and says why
    target: dict = dataclasses.field(default_factory=dict)  # a rewrite: {"scope": "body"|"selection"|"block", ...}
    in_email: bool = False       # accepted, and the email is still as the accept left it

    @property
    def usable(self):
        return not self.error


# --- What a team's email may name ----------------------------------------------------------------

def field_keys(team):
    return list(CONTACT_FIELDS) + [field.key for field in fields_of(team) if field.key not in CONTACT_FIELDS]


def merge_tags(team):
    """Every merge tag a draft may use, as written in a body."""
    return ["{{ contact.%s }}" % key for key in field_keys(team)] + ["{{ team.name }}"]


def check_merge_tags(team, source, what="The draft"):
    """Refuse a {{ ... }} that names anything but this team's fields (and the few names every email has)."""
    keys = set(field_keys(team))
    for construct in sanitize.JINJA.findall(source or ""):
        if construct.startswith("{%"):
            # Only a condition reads names; else, endif and the rest the sandbox checks when the body is cleaned.
            condition = _CONDITION.match(construct)
            if not condition:
                continue
            expression, shown = condition.group(1), construct
        elif construct.startswith("{{"):
            expression = construct[2:-2].strip(" -")
            shown = "{{ %s }}" % expression
        else:
            continue
        try:
            tree = environment().parse("{{ %s }}" % expression)
        except TemplateSyntaxError:
            raise WritingError(f"{what} has a merge tag that cannot be read: {shown}.") from None
        for node in tree.find_all((nodes.Getattr, nodes.Getitem, nodes.Name)):
            name = _named(node)
            if name is None:
                continue
            owner, _dot, attribute = name.partition(".")
            if owner == "contact" and (attribute in keys or not attribute):
                continue
            if owner in OTHER_ATTRIBUTES and (attribute in OTHER_ATTRIBUTES[owner] or not attribute):
                continue
            if owner in TOP_LEVEL_NAMES and not attribute:
                continue
            raise WritingError(f"{what} uses {{{{ {name} }}}}, which is not a field of this team.")


def _named(node):
    """"contact.city" for contact.city or contact['city'], "x" for a bare name; None for other parts."""
    if isinstance(node, nodes.Getattr) and isinstance(node.node, nodes.Name):
        return f"{node.node.name}.{node.attr}"
    if (isinstance(node, nodes.Getitem) and isinstance(node.node, nodes.Name)
            and isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str)):
        return f"{node.node.name}.{node.arg.value}"
    if isinstance(node, nodes.Name) and node.ctx == "load":
        return node.name
    return None


def tags_in(text):
    """The merge tags of a text, spaces inside them evened out ({{contact.name}} is {{ contact.name }})."""
    found = []
    for construct in sanitize.JINJA.findall(text or ""):
        if construct.startswith("{{"):
            found.append("{{ %s }}" % _TAG_SPACES.sub(" ", construct[2:-2].strip(" -")))
    return found


# --- Starting: the inputs of a job ---------------------------------------------------------------

def check_editable(campaign):
    if campaign.state not in store.EDITABLE_STATES:
        raise WritingError("This campaign has started sending, so its email can no longer be changed. "
                           "Duplicate it to write a new version.")


def default_body_kind(campaign):
    return campaign.kind if campaign.kind in dict(BODY_KINDS) else "html"


def draft_inputs(team, campaign, form):
    """The draft prompt's inputs from the brief form, or WritingError with a message at each field."""
    check_editable(campaign)
    values = {name: (form.get(name) or "").strip() for name in DRAFT_LIMITS}
    errors = {}
    for name, (label, limit) in DRAFT_LIMITS.items():
        if len(values[name]) > limit:
            errors[name] = f"{label} is too long ({len(values[name]):,} characters; at most {limit:,})."
    if not values["goal"] and "goal" not in errors:
        errors["goal"] = "Say in a sentence what this email should achieve."
    if values["cta_url"] and "cta_url" not in errors and not re.fullmatch(r"https?://[^\s\"'<>`{}\\]+",
                                                                          values["cta_url"], re.IGNORECASE):
        errors["cta_url"] = "The address must start with https:// (no spaces or quotes)."
    if values["cta_url"] and not values["cta_text"] and "cta_text" not in errors:
        errors["cta_text"] = "Give the button a few words, such as “Book a table”."
    tone = form.get("tone") or "friendly"
    if tone not in dict(TONES):
        errors["tone"] = "Choose one of the tones in the list."
    length = form.get("length") or "medium"
    if length not in dict(LENGTHS):
        errors["length"] = "Choose short, medium or long."
    body_kind = form.get("body_kind") or default_body_kind(campaign)
    if body_kind not in dict(BODY_KINDS):
        errors["body_kind"] = "Choose blocks, HTML or Markdown."
    if errors:
        raise WritingError(errors=errors)
    return {**values, "tone": tone, "length": length, "body_kind": body_kind, "merge_tags": _tag_list(team)}


def _tag_list(team):
    """The merge tags for the prompt, one a line, within the prompt's limit (a team with hundreds of fields
    sends the first ones; the built-in fields come first)."""
    lines, size = [], 0
    for tag in merge_tags(team):
        if size + len(tag) + 1 > MAX_TAG_LIST:
            break
        lines.append(tag)
        size += len(tag) + 1
    return "\n".join(lines)


def _language(form, errors):
    language = (form.get("language") or "").strip()
    if language == OTHER_LANGUAGE:
        language = (form.get("language_other") or "").strip()
        field = "language_other"
    else:
        field = "language"
        if language and language not in LANGUAGES:
            errors[field] = "Choose a language from the list, or “Another language” and type its name."
            return ""
    if not language:
        errors[field] = "Name the language to translate into."
    elif len(language) > MAX_LANGUAGE or re.search(r"[{}<>\n]", language):
        errors[field] = f"A language name is at most {MAX_LANGUAGE} letters, without braces or angle brackets."
    return language


def _mode_and_language(form):
    errors = {}
    mode = form.get("mode") or ""
    if mode not in dict(REWRITE_MODES):
        errors["mode"] = "Choose how to rewrite the text."
    language = _language(form, errors) if mode == "translate" else ""
    return mode, language, errors


def plain_lines(text):
    """Line breaks as a browser's textarea counts them (a submitted form brings CRLF)."""
    return (text or "").replace("\r\n", "\n").replace("\r", "\n")


def body_digest(body):
    return hashlib.sha256(plain_lines(body).encode("utf-8")).hexdigest()[:32]


def rewrite_inputs(team, campaign, form):
    """(the rewrite prompt's inputs, the job's context: where the answer goes back) for the whole body or the
    selected slice of it, or WritingError.

    The writer's page sends the body it shows (`body`) with the selection; it must be the saved body, so
    that accepting can put the answer back in the same place."""
    check_editable(campaign)
    if campaign.kind == "blocks":
        raise WritingError("This email is made of blocks: rewrite one text or heading block with its own "
                           "“Rewrite with AI”.")
    mode, language, errors = _mode_and_language(form)
    body = plain_lines(campaign.body)
    shown = form.get("body")
    if shown is not None and plain_lines(shown) != body:
        errors[""] = "The body has changes that are not saved yet. Save the draft first, then rewrite."
    scope = form.get("scope") or "body"
    start, end = _whole_number(form.get("selection_start")), _whole_number(form.get("selection_end"))
    if scope == "selection":
        if start is None or end is None or not 0 <= start < end <= len(body):
            errors["scope"] = "Select some text in the body first, or choose the whole body."
    elif scope != "body":
        errors["scope"] = "Choose the whole body or the selected text."
    if errors:
        raise WritingError(errors=errors)
    if scope == "selection":
        text, target = body[start:end], {"scope": "selection", "start": start, "end": end}
    else:
        text, target = body, {"scope": "body"}
    if not text.strip():
        raise WritingError("There is no text to rewrite yet: write or select some first.", field="scope")
    if len(text) > MAX_REWRITE_TEXT:
        raise WritingError(f"That is too much text to rewrite at once ({len(text):,} characters; at most "
                           f"{MAX_REWRITE_TEXT:,}). Select a part of it.", field="scope")
    inputs = {"text": text, "format": "markdown" if campaign.kind == "markdown" else "html", "mode": mode,
              "language": language}
    return inputs, {**target, "digest": body_digest(body)}


def block_rewrite_inputs(team, campaign, block_id, form):
    """(the rewrite prompt's inputs, the job's context) for one text or heading block of a block email."""
    check_editable(campaign)
    if campaign.kind != "blocks":
        raise WritingError("This email is not made of blocks.")
    try:
        block = ops.find(store.load(campaign), block_id)
    except BlockProblem as problem:
        raise WritingError(problem.message) from None
    if block.get("type") not in ("text", "heading"):
        raise WritingError("Only a text or a heading block can be rewritten.")
    mode, language, errors = _mode_and_language(form)
    if errors:
        raise WritingError(errors=errors)
    text = block.get("html") if block["type"] == "text" else block.get("text")
    if not (text or "").strip():
        raise WritingError("This block has no text to rewrite yet.")
    inputs = {"text": text, "format": "html" if block["type"] == "text" else "plain", "mode": mode,
              "language": language}
    return inputs, {"scope": "block", "block_id": block_id, "digest": body_digest(text)}


def _whole_number(value):
    text = str(value or "").strip()
    return int(text) if text.isdigit() and len(text) < 10 else None


# --- Checking an answer --------------------------------------------------------------------------

def _answer(job):
    result = job.result if isinstance(job.result, dict) else {}
    data = result.get("data")
    return data if isinstance(data, dict) else {}


def proposal(team, campaign, job):
    """The job's answer, checked; a refusal is a Proposal with `error` set (shown, never stored)."""
    found = draft_proposal(team, job) if job.kind == "draft" else rewrite_proposal(team, campaign, job)
    found.in_email = is_in_email(campaign, job)
    return found


def is_in_email(campaign, job):
    """Whether the email is still as accepting `job` left it (so Undo can put back what it replaced)."""
    previous = job.previous if isinstance(job.previous, dict) else None
    return bool(job.accepted_at and previous and body_digest(campaign.body) == previous.get("accepted_digest"))


def draft_proposal(team, job):
    data = _answer(job)
    inputs = job.inputs if isinstance(job.inputs, dict) else {}
    body_kind = inputs.get("body_kind") if inputs.get("body_kind") in dict(BODY_KINDS) else "html"
    found = Proposal("draft", body_kind, subject=_one_line(data.get("subject"), 998),
                     preheader=_one_line(data.get("preheader"), 300), text=_text(data.get("text")))
    try:
        check_merge_tags(team, found.subject + "\n" + found.preheader)
        if body_kind == "blocks":
            found.blocks, found.notes = blocks_from_answer(data.get("blocks"))
            if not found.blocks["blocks"]:
                raise WritingError("The draft has no blocks that could be used; generate it again.")
            found.body = store.rendered_body(found.blocks, brand_for(team))
            check_merge_tags(team, found.body)
        else:
            source = _text(data.get(body_kind))
            if not source.strip():
                raise WritingError(f"The answer has no {'HTML' if body_kind == 'html' else 'Markdown'} body; "
                                   "generate it again.")
            check_merge_tags(team, source)
            if body_kind == "markdown":
                check_markdown(source)
            found.body = prepare.clean_source(source, body_kind)
    except (WritingError, BlockProblem, RenderError) as problem:
        found.error = problem.message if isinstance(problem, WritingError) else f"The draft cannot be used: {problem.message}"
        return found
    found.flags = spam_check.flags("\n".join((found.subject, found.preheader, found.text or found.body)))
    return found


def blocks_from_answer(items):
    """(a valid block document, notes) from the model's simple list; a block that fails its check is left out."""
    blocks, notes = [], []
    headings = 0
    for number, item in enumerate(items if isinstance(items, list) else [], start=1):
        item = item if isinstance(item, dict) else {}
        kind = item.get("type")
        text = _text(item.get("text")).strip()
        try:
            if kind == "heading":
                headings += 1
                block = {"type": "heading", "text": text, "level": 1 if headings == 1 and number == 1 else 2}
            elif kind == "text":
                block = {"type": "text", "html": _paragraphs(text)}
            elif kind == "button":
                block = {"type": "button", "text": text, "href": _text(item.get("url")).strip()}
            elif kind == "divider":
                block = {"type": "divider"}
            else:
                notes.append(f"Block {number} was left out: “{str(kind)[:40]}” is not a heading, text, button or "
                             "divider.")
                continue
            if kind in ("heading", "text") and not text:
                notes.append(f"Block {number} was left out: the {kind} was empty.")
                continue
            blocks.append(schema.validate_block({"id": schema.new_id(), **block}))
        except BlockProblem as problem:
            notes.append(f"Block {number} ({kind}) was left out: {problem.message}")
        if len(blocks) >= schema.MAX_BLOCKS:
            notes.append(f"Only the first {schema.MAX_BLOCKS} blocks were kept.")
            break
    return schema.validate_document({"version": schema.VERSION, "blocks": blocks}), notes


def _paragraphs(text):
    """Plain text as the rich text of a text block: a paragraph per blank line, <br> per line break."""
    parts = [part.strip() for part in _PARAGRAPHS.split(text) if part.strip()]
    return clean_rich_text("".join("<p>%s</p>" % html.escape(part, quote=False).replace("\n", "<br>")
                                   for part in parts))


def _text(value):
    return value if isinstance(value, str) else ""


def _one_line(value, limit):
    return " ".join(_text(value).split())[:limit]


def _target(job):
    context = job.context if isinstance(job.context, dict) else {}
    scope = context.get("scope")
    if scope == "selection":
        return {"scope": "selection", "start": _whole_number(context.get("start")),
                "end": _whole_number(context.get("end")), "digest": str(context.get("digest") or "")}
    if scope == "block":
        return {"scope": "block", "block_id": str(context.get("block_id") or ""),
                "digest": str(context.get("digest") or "")}
    return {"scope": "body", "digest": str(context.get("digest") or "")}


def rewrite_proposal(team, campaign, job):
    data = _answer(job)
    inputs = job.inputs if isinstance(job.inputs, dict) else {}
    original = str(inputs.get("text") or "")
    target = _target(job)
    text_format = inputs.get("format") if inputs.get("format") in ("html", "markdown", "plain") else "html"
    found = Proposal("rewrite", text_format, text=_text(data.get("text")), current=original, target=target)
    replacement = found.text.strip("\n") if target["scope"] == "selection" else found.text.strip()
    if target["scope"] == "selection":
        replacement = _keep_edges(original, replacement)
    found.replacement = replacement
    try:
        if job.accepted_at is None:
            _check_fresh(campaign, target)
        if not replacement.strip():
            raise WritingError("The answer was empty; run the rewrite again.")
        check_merge_tags(team, replacement, "The rewrite")
        before, after = tags_in(original), tags_in(replacement)
        lost = [tag for tag in dict.fromkeys(before) if tag not in after]
        added = [tag for tag in dict.fromkeys(after) if tag not in before]
        if lost:
            found.notes.append("The rewrite lost " + ", ".join(lost) + ": put it back by hand if you need it.")
        if added:
            found.notes.append("The rewrite added " + ", ".join(added) + ", which your text did not have.")
        if target["scope"] == "block":
            found.body = _rewritten_block(campaign, target, replacement, text_format)
        else:
            kind = campaign.kind if campaign.kind in ("html", "markdown") else "html"
            if kind == "markdown":
                check_markdown(replacement, "The rewrite")
            if target["scope"] == "selection":
                body = plain_lines(campaign.body)
                spliced = body[:target["start"] or 0] + replacement + body[target["end"] or 0:]
                cleaned = prepare.clean_source(spliced, kind)
                # The writer's own text around the slice stays exactly as typed (it is cleaned whenever it is
                # rendered, like any body); only a slice the cleaner would change is stored cleaned, with the rest.
                found.body = spliced if kind == "markdown" or _clean_as_it_is(replacement) else cleaned
            else:
                found.body = prepare.clean_source(replacement, kind)
    except (WritingError, BlockProblem, RenderError) as problem:
        found.error = problem.message if isinstance(problem, WritingError) else f"The rewrite cannot be used: {problem.message}"
        return found
    found.flags = spam_check.flags(replacement)
    return found


def check_markdown(source, what="The draft"):
    if _UNSAFE_MARKDOWN.search(source or ""):
        raise WritingError(f"{what} has HTML that an email cannot keep (a script, a style, a form or an event "
                           "attribute), so it cannot be used. Ask again.")


def _clean_as_it_is(fragment):
    """Whether the sanitizer leaves this piece of HTML exactly as it is (nothing removed, nothing escaped)."""
    cleaned, constructs, lost = sanitize.protect_and_clean(fragment)
    return not lost and sanitize.restore(cleaned, constructs) == fragment


def _check_fresh(campaign, target):
    """Refuse a rewrite whose text is no longer what it was made from: it would land in the wrong place."""
    if target["scope"] == "block":
        try:
            block = ops.find(store.load(campaign), target["block_id"])
        except BlockProblem:
            raise WritingError("That block is no longer in this email; run the rewrite again.") from None
        current = block.get("html") if block.get("type") == "text" else block.get("text")
        if body_digest(current) != target["digest"]:
            raise WritingError("The block changed since; run the rewrite again.")
    elif body_digest(campaign.body) != target["digest"]:
        raise WritingError("The body changed since; run the rewrite again.")


def _keep_edges(original, replacement):
    """A selection's leading and trailing spaces stay: the model trims them, the text around it needs them."""
    lead = original[:len(original) - len(original.lstrip())]
    trail = original[len(original.rstrip()):]
    return lead + replacement.strip() + trail


def _rewritten_block(campaign, target, replacement, text_format):
    """The rendered body with the block's new text (BlockProblem when it no longer fits the block)."""
    doc = store.load(campaign)
    field = "html" if text_format == "html" else "text"
    changed = ops.update(doc, target["block_id"], {field: replacement if field == "html" else " ".join(replacement.split())})
    return store.rendered_body(changed, brand_for(campaign.team))


# --- Accepting and undoing ---------------------------------------------------------------------

def _snapshot(campaign):
    return {"kind": campaign.kind, "body": campaign.body or "", "blocks": campaign.blocks,
            "subject": campaign.subject or "", "preheader": campaign.preheader or ""}


def accept(team, campaign, job, *, use_subject=False):
    """Put the checked proposal into the campaign; what it replaced is kept for undo. Returns the Proposal.

    The job is claimed with a conditional update inside the transaction, so a double click accepts once."""
    check_editable(campaign)
    if job.state != "done":
        raise WritingError("This proposal is not ready yet.")
    with db.atomic():
        claimed = (AiJob.update(accepted_at=utcnow())
                   .where((AiJob.id == job.id) & AiJob.accepted_at.is_null()).execute())
        if not claimed:
            raise WritingError("This proposal is already in the email. Undo it first to accept it again.")
        _reload(campaign)
        check_editable(campaign)
        found = proposal(team, campaign, job)
        if not found.usable:
            raise WritingError(found.error)
        previous = _snapshot(campaign)
        if job.kind == "draft":
            _accept_draft(team, campaign, found, use_subject)
        else:
            _accept_rewrite(team, campaign, job, found)
        campaign.updated_at = utcnow()
        campaign.save()
        previous["accepted_digest"] = body_digest(campaign.body)
        previous["used_subject"] = bool(use_subject and job.kind == "draft")
        job.previous = previous
        job.accepted_at = utcnow()
        job.save(only=[AiJob.previous, AiJob.accepted_at])
    return found


def _reload(campaign):
    """The campaign as stored now (another request may have changed it since this one loaded it)."""
    stored = type(campaign).get_by_id(campaign.id)
    campaign.__data__.update(stored.__data__)
    campaign._dirty.clear()


def _accept_draft(team, campaign, found, use_subject):
    if use_subject:
        campaign.subject, campaign.preheader = found.subject, found.preheader
    if found.body_kind == "blocks":
        store.save(campaign, found.blocks, brand_for(team))  # the block editor's undo has the document it replaced
    else:
        campaign.kind, campaign.body = found.body_kind, found.body


def _accept_rewrite(team, campaign, job, found):
    target = found.target
    if target["scope"] == "block":
        doc = store.load(campaign)
        field = "html" if ops.find(doc, target["block_id"]).get("type") == "text" else "text"
        value = found.replacement if field == "html" else " ".join(found.replacement.split())
        store.save(campaign, ops.update(doc, target["block_id"], {field: value}), brand_for(team))
        return
    campaign.body = found.body


def undo(team, campaign, job):
    """Put back what accepting `job` replaced; WritingError when the email changed since.

    A block email gets its previous document through the block store, so that step is in the block
    editor's undo history too."""
    check_editable(campaign)
    previous = job.previous if isinstance(job.previous, dict) else None
    if job.accepted_at is None or previous is None:
        raise WritingError("There is nothing to undo for this proposal.")
    with db.atomic():
        claimed = (AiJob.update(accepted_at=None, previous=None)
                   .where((AiJob.id == job.id) & AiJob.accepted_at.is_null(False)).execute())
        if not claimed:
            raise WritingError("There is nothing to undo for this proposal.")
        _reload(campaign)
        if body_digest(campaign.body) != previous.get("accepted_digest"):
            raise WritingError("The email changed after this was accepted, so undoing it would lose those changes. "
                               "Change it back by hand, or use the block editor's Undo.")
        if previous.get("kind") == "blocks" and isinstance(previous.get("blocks"), dict):
            store.save(campaign, previous["blocks"], brand_for(team))
        else:
            campaign.kind, campaign.body, campaign.blocks = previous["kind"], previous["body"], previous.get("blocks")
        if previous.get("used_subject"):
            campaign.subject, campaign.preheader = previous.get("subject", ""), previous.get("preheader", "")
        campaign.updated_at = utcnow()
        campaign.save()
    job.accepted_at = None
    job.previous = None
    return campaign


def discard(team, job):
    """Forget a proposal nobody wants (its generation stays in the usage records)."""
    if job.accepted_at is not None:
        raise WritingError("This proposal is in the email: undo it first, or keep it.")
    job.delete_instance()


# --- Showing ----------------------------------------------------------------------------------

def choices():
    """What the draft and rewrite forms offer."""
    return {"tones": TONES, "lengths": LENGTHS, "body_kinds": BODY_KINDS, "modes": REWRITE_MODES,
            "languages": [(name, name) for name in LANGUAGES] + [(OTHER_LANGUAGE, "Another language…")],
            "limits": {name: limit for name, (_label, limit) in DRAFT_LIMITS.items()}, "max_language": MAX_LANGUAGE}


def proposal_preview(team, campaign, job):
    """The proposed email as a sample person would see it, for the sandboxed preview frame."""
    found = proposal(team, campaign, job)
    if not found.usable:
        return _note_page(found.error)
    if found.job_kind == "draft":
        kind = found.body_kind
    elif found.target.get("scope") == "block":
        kind = "blocks"
    else:
        kind = campaign.kind if campaign.kind in ("html", "markdown") else "html"
    # An unsaved copy of the campaign with the proposal in it: the preview wraps it in the campaign's layout,
    # as it will be sent.
    item = Campaign(**{**campaign.__data__, "body": found.body, "kind": kind,
                       "subject": found.subject or campaign.subject, "preheader": found.preheader or campaign.preheader})
    try:
        return prepare.preview(item, sample_contact(), team=team)[1]
    except RenderError as error:
        return _note_page(str(error))


def _note_page(words):
    return f'<p style="font-family:sans-serif;color:#7f1d1d">{html.escape(words)}</p>'


def latest_job(team, campaign, kind, block_id=None):
    """The newest job of `kind` for the campaign's body (block_id None) or for one of its blocks."""
    for job in (AiJob.select().where((AiJob.team == team) & (AiJob.campaign == campaign) & (AiJob.kind == kind))
                .order_by(AiJob.id.desc()).limit(jobs.KEEP_PER_CAMPAIGN)):
        context = job.context if isinstance(job.context, dict) else {}
        if (context.get("block_id") or None) == block_id:
            return job
    return None
