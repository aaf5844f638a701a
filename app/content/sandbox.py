"""The locked-down Jinja that renders every email: compiling, rendering within caps, and the
quoted-printable pieces the message factory joins.

Bodies are written by team members but personalised with contact data that
anyone can type into a sign-up form, and rendered on the server. So:

* Jinja runs in an ImmutableSandboxedEnvironment that sees only what
  `fields.contact_context()` and the link variables provide: no config, environment,
  request or app objects (listmonk CVE-2025-49136 read host secrets through its
  template functions).
* Work and memory are bounded. There are no loops, macros or block
  assignments (personalisation needs conditions and filters, not programs),
  so a render is linear in the template's size, and compiling is capped
  (MAX_TOKENS, MAX_BRACKETS, MAX_NESTING). Every operator, slice, filter and
  method that can build a large value is sized *before* it builds it
  (`{{ 'x' * 10**9 }}` fails at once instead of allocating a gigabyte); a list
  or dict is never turned into text past MAX_VALUE (sizing.text_size walks it
  instead); `%` is capped by its template and the sum of its arguments; all
  the values a render builds share an allocation budget; and the output is
  counted as it is generated and cut off at MAX_OUTPUT.
* Output is autoescaped in HTML, `|safe` does not exist, and autoescape
  cannot be switched off, so contact data can never inject markup.
* The HTML itself is cleaned by app.content.sanitize (bleach), and a link
  address can start with a variable only if it is one of our own link
  variables, so a contact field can never become a javascript: URL. What
  Jinja prints literally is exactly what bleach approved (prepare.check_constructs:
  no {% raw %}, no {% if %} cutting a tag in two), on every render.

Every failure is a RenderError whose message says what is wrong and, where
there is one, on which line.
"""
import binascii
import datetime
import functools
import re
import types

from jinja2 import Undefined
from jinja2 import filters as jinja_filters
from jinja2 import meta
from jinja2 import nodes
from jinja2.compiler import CodeGenerator
from jinja2.exceptions import SecurityError
from jinja2.exceptions import TemplateError
from jinja2.exceptions import TemplateSyntaxError
from jinja2.runtime import markup_join
from jinja2.runtime import str_join
from jinja2.sandbox import ImmutableSandboxedEnvironment

from app.content import sanitize
from app.content.record import Record
from app.content.sizing import LimitError
from app.content.sizing import MAX_ITEMS
from app.content.sizing import MAX_VALUE
from app.content.sizing import TOO_MANY
from app.content.sizing import check_size
from app.content.sizing import close_budget
from app.content.sizing import format_size
from app.content.sizing import join_size
from app.content.sizing import open_budget
from app.content.sizing import replace_size
from app.content.sizing import reserve
from app.content.sizing import text_size
from app.errors import Problem

MAX_SOURCE = 300_000  # characters in a body or layout
MAX_OUTPUT = 1_000_000  # characters of output (Gmail clips messages above ~100 KB anyway)
MAX_SUBJECT = 998
MAX_INT_BITS = 4096
# How deep brackets, and expressions or blocks inside one another, may nest. Jinja's parser and
# code generator, and Python's compiler, are recursive: ~100 nested parentheses overflow the
# stack (a 500, on every page that shows the stored subject). Real personalisation nests a few levels.
MAX_BRACKETS = 20
MAX_NESTING = 40
# Names, operators and values in all of a template's {{ }} and {% %} together. Compiling costs
# memory per token (Jinja's tree, then Python's compiler): 300 KB of `{{ a }}` took 430 MB and
# 11 s of CPU. The built-in layouts use under 100; 10,000 compiles in well under 50 MB.
MAX_TOKENS = 10_000


LINK_VARIABLES = ("unsubscribe_url", "preferences_url", "webview_url")
# Every name a body may use; anything else is reported as unknown when saving.
NAMES = ("contact", "campaign", "team", "postal_address") + LINK_VARIABLES

# Internal names added by the message factory for tracking.
OPEN_TOKEN = "loft_open_token"
CLICK_TOKEN = "loft_click_token"
TRACKING_NAMES = frozenset((OPEN_TOKEN, CLICK_TOKEN))
# The filter prepare() puts on every value printed inside a style attribute.
CSS_FILTER = "loft_css_value"


class RenderError(Problem):
    """A template that cannot be rendered, with a message for the person who wrote it."""

    def __init__(self, message, line=None):
        self.line = line
        super().__init__(f"Line {line}: {message}" if line else message)


# --- The sandbox ------------------------------------------------------------

class _GuardedCodeGenerator(CodeGenerator):
    """Routes `a ~ b` through the environment, so its size is checked before joining.

    Also prints the message factory's own tracking tokens with a plain str()
    instead of escape(): they are URL-safe base64 that we made, and skipping
    the Markup copy matters when a message has dozens of tracked links.
    """

    def _output_child_pre(self, node, frame, finalize):
        if isinstance(node, nodes.Name) and node.name in TRACKING_NAMES:
            self.write("str(")
        else:
            super()._output_child_pre(node, frame, finalize)

    def _output_child_post(self, node, frame, finalize):
        if isinstance(node, nodes.Name) and node.name in TRACKING_NAMES:
            self.write(")")
        else:
            super()._output_child_post(node, frame, finalize)

    def visit_Getitem(self, node, frame):
        # Jinja writes slices as plain Python `x[a:b]`, past environment.getitem; route them
        # through it so a slice (a new value, up to the size of x) is charged like any other.
        if not isinstance(node.arg, nodes.Slice):
            return super().visit_Getitem(node, frame)
        self.write("environment.getitem(")
        self.visit(node.node, frame)
        self.write(", slice(")
        for part in (node.arg.start, node.arg.stop, node.arg.step):
            if part is None:
                self.write("None")
            else:
                self.visit(part, frame)
            self.write(", ")
        self.write("))")
        return None

    def visit_Concat(self, node, frame):
        self.write("environment.guarded_concat(context, (")
        for argument in node.nodes:
            self.visit(argument, frame)
            self.write(", ")
        self.write("))")


_STR_METHODS = frozenset((
    "upper", "lower", "title", "capitalize", "casefold", "swapcase", "strip", "lstrip", "rstrip",
    "startswith", "endswith", "split", "rsplit", "splitlines", "partition", "rpartition", "count", "find",
    "rfind", "index", "rindex", "isdigit", "isalpha", "isalnum", "isspace", "islower", "isupper", "isnumeric",
    "isdecimal", "istitle", "removeprefix", "removesuffix", "replace", "join",
))
_DATE_METHODS = frozenset(("strftime", "isoformat", "weekday", "isoweekday"))
_SEQUENCE_METHODS = frozenset(("count", "index"))


class Sandbox(ImmutableSandboxedEnvironment):
    """Jinja for untrusted templates: see the module docstring for the rules."""

    code_generator_class = _GuardedCodeGenerator
    intercepted_binops = frozenset(("*", "**", "+", "%"))

    def __init__(self, autoescape):
        super().__init__(autoescape=autoescape, optimized=False, undefined=Undefined, keep_trailing_newline=True,
                         finalize=_finalize, auto_reload=False, cache_size=0)
        self.globals.clear()  # no range, lipsum, cycler, joiner, namespace or dict
        self.filters = dict(_FILTERS)
        self.filters[CSS_FILTER] = sanitize.safe_css_value  # added by prepare(), not offered to authors

    # Operators that could build huge values are checked before they run.
    def call_binop(self, context, operator, left, right):
        try:
            if operator == "*":
                return self._multiply(left, right)
            if operator == "**":
                return self._power(left, right)
            if operator == "+":
                if isinstance(left, str) and isinstance(right, str):
                    reserve(chars=len(left) + len(right))
                    if hasattr(left, "__html__") or hasattr(right, "__html__"):
                        return check_size(left + right)  # Markup escapes the other side: sized again after
                    return left + right
                if isinstance(left, (list, tuple)) and isinstance(right, (list, tuple)):
                    reserve(items=len(left) + len(right))
                return left + right
            if operator == "%":
                if isinstance(left, str):
                    size = format_size(left, right)
                    if hasattr(left, "__html__"):
                        size = len(left) + 5 * size  # Markup escapes each argument: & becomes &amp;
                    reserve(chars=size)
                    return left % right
                return left % right
        except OverflowError:
            raise LimitError("a number in this template is too large") from None
        return super().call_binop(context, operator, left, right)

    @staticmethod
    def _multiply(left, right):
        for sequence, times in ((left, right), (right, left)):
            if isinstance(sequence, (str, list, tuple)) and isinstance(times, int) and not isinstance(times, bool):
                if len(sequence) * max(times, 0) > (MAX_VALUE if isinstance(sequence, str) else MAX_ITEMS):
                    if isinstance(sequence, str):
                        raise LimitError(f"multiplying this text would make it longer than {MAX_VALUE:,} characters")
                    raise LimitError(f"multiplying this list would give it more than {MAX_ITEMS:,} items")
                size = len(sequence) * max(times, 0)
                reserve(**({"chars": size} if isinstance(sequence, str) else {"items": size}))
                return sequence * times
        if isinstance(left, int) and isinstance(right, int):
            if abs(left).bit_length() + abs(right).bit_length() > MAX_INT_BITS:
                raise LimitError("a number in this template is too large")
        return left * right

    @staticmethod
    def _power(left, right):
        if isinstance(left, int) and isinstance(right, int) and abs(left) > 1:
            if right > MAX_INT_BITS or right * abs(left).bit_length() > MAX_INT_BITS:
                raise LimitError("a number in this template is too large")
        if isinstance(right, (int, float)) and abs(right) > MAX_INT_BITS:
            raise LimitError("a number in this template is too large")
        return left ** right

    def guarded_concat(self, context, items):
        size = 0
        for item in items:  # sized before str() is called on any of them
            size += text_size(item, MAX_VALUE - size)
        reserve(chars=size)
        strings = [item if isinstance(item, str) else str(item) for item in items]
        if context.eval_ctx.autoescape:
            return check_size(markup_join(strings))  # escaping can lengthen it: sized again
        return str_join(strings)

    def getitem(self, obj, argument):
        # A slice builds a new value: charge it before it exists.
        if isinstance(argument, slice) and isinstance(obj, (str, list, tuple)):
            try:
                length = len(range(*argument.indices(len(obj))))
            except (TypeError, ValueError):
                length = 0  # not a valid slice: the lookup below fails in words
            reserve(**({"chars": length} if isinstance(obj, str) else {"items": length}))
        return super().getitem(obj, argument)

    def call(__self, __context, __obj, *args, **kwargs):  # noqa: N805 (Jinja's calling convention)
        if isinstance(__obj, Undefined):
            return __obj(*args, **kwargs)  # raises the usual "is undefined" error
        owner = getattr(__obj, "__self__", None)
        name = getattr(__obj, "__name__", "")
        if isinstance(__obj, (types.BuiltinMethodType, types.MethodWrapperType)) and owner is not None:
            if isinstance(owner, str) and name in _STR_METHODS:
                for argument in (*args, *kwargs.values()):
                    text_size(argument)
                if name in ("split", "rsplit"):
                    # At most MAX_ITEMS + 1 pieces are ever built; more is refused just below.
                    separator = args[0] if args else kwargs.get("sep")
                    limit = args[1] if len(args) > 1 else kwargs.get("maxsplit", -1)
                    if not isinstance(limit, int) or not 0 <= limit <= MAX_ITEMS:
                        limit = MAX_ITEMS
                    return check_size(__obj(separator, limit))
                if name == "splitlines" and owner.count("\n") + owner.count("\r") > MAX_ITEMS:
                    raise LimitError(TOO_MANY)
                if name == "replace":
                    size = replace_size(owner, *args[:2], *(args[2:3] or [-1]))
                    if size is not None and size > MAX_VALUE:
                        raise LimitError(f"a value in this template would be longer than {MAX_VALUE:,} characters")
                elif name == "join" and args:
                    items, size = join_size(owner, args[0])
                    if size > MAX_VALUE:
                        raise LimitError(f"a value in this template would be longer than {MAX_VALUE:,} characters")
                    args = (items,) + args[1:]
                return check_size(__obj(*args, **kwargs))
            if isinstance(owner, (datetime.date, datetime.datetime)) and name in _DATE_METHODS:
                if name == "strftime" and (not args or not isinstance(args[0], str) or len(args[0]) > 200):
                    raise LimitError("strftime() needs a format of at most 200 characters")
                return check_size(__obj(*args, **kwargs))
            if isinstance(owner, (list, tuple)) and name in _SEQUENCE_METHODS:
                return __obj(*args, **kwargs)
        raise SecurityError(f"calling {name or 'this'}() is not allowed in email templates")


def _finalize(value):
    """Every {{ value }} passes here before it is printed: a list or dict is sized before str() runs."""
    if value is None:
        return ""
    if not isinstance(value, (str, int, float)):
        text_size(value)
    return value


# Filters: only ones that cannot build large values, or guarded versions.
# These never turn their input into text or walk into it, so any list may be passed.
_SHALLOW_FILTERS = frozenset(("length", "count", "first", "last", "default", "d"))


def _guard_filter(function, name):
    """A filter whose inputs are sized before it runs, and whose result is sized after.

    Most filters call str() on their input (|string, |upper, |escape…) or walk into
    it (|sort, |unique, |min); a container that would print as more than MAX_VALUE
    characters is refused before that happens, so a filter builds at most a small
    multiple of MAX_VALUE (|urlencode, the worst, triples each UTF-8 byte)."""
    skip = 1 if getattr(function, "jinja_pass_arg", None) is not None else 0  # eval_ctx or environment

    @functools.wraps(function)
    def guarded(*args, **kwargs):
        if name not in _SHALLOW_FILTERS:
            for argument in (*args[skip:], *kwargs.values()):
                text_size(argument)
            if name in ("sort", "unique") and args[skip:] and isinstance(args[skip], str) \
                    and len(args[skip]) > MAX_ITEMS:
                raise LimitError(TOO_MANY)  # a list of every character
        return check_size(function(*args, **kwargs))
    return guarded


def _safe_replace(eval_ctx, text, old, new, count=None):
    for argument in (text, old, new):
        text_size(argument)
    size = replace_size(str(text), str(old), str(new), -1 if count is None else count)
    if size is not None and size > MAX_VALUE:
        raise LimitError(f"a value in this template would be longer than {MAX_VALUE:,} characters")
    return check_size(jinja_filters.do_replace(eval_ctx, text, old, new, count))


_safe_replace.jinja_pass_arg = jinja_filters.do_replace.jinja_pass_arg


def _safe_join(eval_ctx, value, d="", attribute=None):
    if attribute is None and not isinstance(value, Undefined):
        value, size = join_size(d, value)
        if size > MAX_VALUE:
            raise LimitError(f"a value in this template would be longer than {MAX_VALUE:,} characters")
    return check_size(jinja_filters.do_join(eval_ctx, value, d, attribute))


_safe_join.jinja_pass_arg = jinja_filters.do_join.jinja_pass_arg


def _safe_sum(values, start=0):
    total = start
    for count, value in enumerate(values):
        if count >= MAX_ITEMS or not isinstance(value, (int, float)) or isinstance(value, bool):
            raise LimitError("sum only adds up numbers")
        total += value
    return total


def _safe_list(value):
    if isinstance(value, (str, list, tuple, Record)) or isinstance(value, Undefined):
        reserve(items=len(value))
        return list(value)
    raise LimitError("list() only takes text or lists")


_FILTERS = {name: _guard_filter(jinja_filters.FILTERS[name], name) for name in (
    "abs", "capitalize", "default", "d", "escape", "e", "first", "last", "length", "count", "lower", "upper",
    "title", "trim", "truncate", "striptags", "urlencode", "int", "float", "round", "string", "reverse", "sort",
    "unique", "wordcount", "min", "max",
)}
_FILTERS.update(replace=_safe_replace, join=_safe_join, sum=_safe_sum, list=_safe_list)

_ALLOWED_NODES = (
    nodes.Template, nodes.Output, nodes.TemplateData, nodes.If, nodes.Assign, nodes.With, nodes.Name, nodes.Const,
    nodes.Getattr, nodes.Getitem, nodes.Slice, nodes.Filter, nodes.Test, nodes.CondExpr, nodes.BinExpr,
    nodes.UnaryExpr, nodes.Compare, nodes.Operand, nodes.Concat, nodes.List, nodes.Tuple, nodes.Dict, nodes.Pair,
    nodes.Keyword, nodes.Call,
)
_NODE_NAMES = {
    nodes.For: "loops ({% for %})", nodes.Macro: "macros", nodes.CallBlock: "{% call %} blocks",
    nodes.FilterBlock: "{% filter %} blocks", nodes.AssignBlock: "{% set %}…{% endset %} blocks",
    nodes.Include: "includes", nodes.Import: "imports", nodes.FromImport: "imports",
    nodes.Extends: "template inheritance", nodes.Block: "{% block %}",
    nodes.ScopedEvalContextModifier: "{% autoescape %}", nodes.EvalContextModifier: "{% autoescape %}",
    nodes.NSRef: "namespaces", nodes.Scope: "{% autoescape %} blocks",
}


def _check_nodes(tree):
    for node in tree.find_all(nodes.Node):
        if not isinstance(node, _ALLOWED_NODES):
            what = next((label for kind, label in _NODE_NAMES.items() if isinstance(node, kind)),
                        type(node).__name__)
            raise RenderError(f"{what} cannot be used in email templates; use {{% if %}}, variables and filters.",
                              getattr(node, "lineno", None))


_environments = {}


def environment(autoescape=True):
    env = _environments.get(autoescape)
    if env is None:
        env = _environments[autoescape] = Sandbox(autoescape)
    return env


def _syntax_message(error):
    message = (error.message or "syntax error").rstrip(".")
    if "no filter named" in message.lower():
        message += f". Filters you can use: {', '.join(sorted(_FILTERS))}"
    return message


_TOO_DEEP = ("this template nests brackets, filters, conditions or {% if %} blocks too deeply "
             f"(at most {MAX_BRACKETS} brackets inside one another, {MAX_NESTING} levels in all); simplify it.")


def _check_brackets(env, source):
    """Refuse brackets nested deeper than MAX_BRACKETS, and more than MAX_TOKENS tokens,
    before the recursive parser and the compiler see them."""
    depth = 0
    count = 0
    for lineno, token, value in env.lexer.tokeniter(source, None):
        if token in ("data", "whitespace"):
            continue
        count += 1
        if count > MAX_TOKENS:
            raise RenderError(f"this template has too much template code in it (more than {MAX_TOKENS:,} names, "
                              "operators and values in its {{ }} and {% %}); shorten it.", lineno)
        if token == "operator":
            if value in "([{":
                depth += 1
                if depth > MAX_BRACKETS:
                    raise RenderError(_TOO_DEEP, lineno)
            elif value in ")]}":
                depth = max(depth - 1, 0)
        elif token in ("variable_begin", "block_begin"):
            depth = 0


def _check_depth(tree):
    """Refuse a syntax tree deeper than MAX_NESTING (chained filters, `a + a + …`, nested ifs), iteratively."""
    stack = [(tree, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_NESTING:
            raise RenderError(_TOO_DEEP, getattr(node, "lineno", None))
        stack.extend((child, depth + 1) for child in node.iter_child_nodes())


@functools.lru_cache(maxsize=128)
def _compile_cached(source, autoescape, extra_names):
    env = environment(autoescape)
    try:
        _check_brackets(env, source)
        tree = env.parse(source)
        _check_depth(tree)
        _check_nodes(tree)
        names = frozenset(meta.find_undeclared_variables(tree))
        template = env.from_string(tree)
    except TemplateSyntaxError as error:  # also unknown filters and tests, found while compiling
        raise RenderError(_syntax_message(error), error.lineno) from None
    except TemplateError as error:
        raise RenderError(str(error)) from None
    except (RecursionError, MemoryError, SyntaxError):
        # The caps above should make these unreachable; a template that still hits a limit of
        # Python's own parser or compiler is refused in words, never a 500.
        raise RenderError(_TOO_DEEP) from None
    return template, names, names - set(NAMES) - set(extra_names)


def compile_template(source, autoescape=True, extra_names=(), strict_names=False):
    """Compile once (cached): the Template and the set of names it reads.

    With strict_names, a name that is neither a known variable nor one of
    extra_names is an error (used when saving, so typos are caught early).
    """
    if len(source) > MAX_SOURCE:
        raise RenderError(f"This template is too long ({len(source):,} characters; at most {MAX_SOURCE:,}).")
    template, names, unknown = _compile_cached(source, autoescape, tuple(sorted(extra_names)))
    if strict_names and unknown:
        name = sorted(unknown)[0]
        line = _line_of_name(source, name)
        raise RenderError(f"there is no variable called '{name}'. You can use: "
                          "contact.email, contact.name, contact.first_name, contact.<custom field key>, "
                          f"{', '.join(LINK_VARIABLES)}, postal_address, campaign.subject.", line)
    return template, names


def _line_of_name(source, name):
    for match in sanitize.JINJA.finditer(source):
        if re.search(r"\b%s\b" % re.escape(name), match.group(0)):
            return source.count("\n", 0, match.start()) + 1
    return None


def _runtime_line(error):
    tb = error.__traceback__
    line = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def _render_error(error):
    """The RenderError for an exception raised while rendering (already rewritten to template lines)."""
    if isinstance(error, RenderError):
        return error
    line = _runtime_line(error)
    if isinstance(error, (LimitError, SecurityError)):
        return RenderError(str(error), line)
    if isinstance(error, TemplateError):
        return RenderError(error.message or str(error), line)
    if isinstance(error, (TypeError, ValueError, ArithmeticError, LookupError, AttributeError, RecursionError,
                          MemoryError)):
        return RenderError(f"{type(error).__name__}: {error}", line)
    return None


def _reraise(template):
    """Turn the exception being handled into a RenderError with the template's line numbers."""
    try:
        template.environment.handle_exception()  # re-raises with the traceback pointing at template lines
    except Exception as rewritten:  # noqa: BLE001 (sorted below)
        converted = _render_error(rewritten)
        if converted is None:
            raise
        raise converted from None


def generate(template, context, limit=MAX_OUTPUT):
    """Yield the output chunks of a render, enforcing every cap; failures become RenderError."""
    open_budget()
    produced = 0
    try:
        for chunk in template.root_render_func(template.new_context(context)):
            produced += len(chunk)
            if produced > limit:
                raise LimitError(f"the output would be longer than {limit:,} characters")
            yield chunk
    except Exception:  # noqa: BLE001 (converted or re-raised by _reraise)
        _reraise(template)
    finally:
        close_budget()


def encode_pieces(template, context, cache, out, limit=MAX_OUTPUT, encode=None):
    """Render and quoted-printable-encode in one pass (the message factory's hot loop).

    Appends the encoded pieces to the list out. cache maps a piece of text to
    its encoding (`encode`, qp_piece unless given); static pieces are put there once per
    campaign, personalised ones are added as they come (the same token appears in many
    links), and encoding depends only on the text.
    """
    encode = encode or qp_piece
    open_budget()
    produced = 0
    append = out.append
    get = cache.get
    try:
        for chunk in template.root_render_func(template.new_context(context)):
            produced += len(chunk)
            if produced > limit:
                raise LimitError(f"the output would be longer than {limit:,} characters")
            encoded = get(chunk)
            if encoded is None:
                encoded = cache[chunk] = encode(chunk)
            append(encoded)
    except Exception:  # noqa: BLE001 (converted or re-raised by _reraise)
        _reraise(template)
    finally:
        close_budget()


def render(template, context, limit=MAX_OUTPUT):
    return "".join(generate(template, context, limit))


# --- Quoted-printable in pieces ---------------------------------------------------

def qp_piece(text):
    """Quoted-printable for one piece of a body, ready to be joined to the next piece.

    QP is line-local, so a body can be encoded piece by piece as long as each
    piece ends with a line break: a hard one where the text ends in a newline,
    else a soft one ("=" CRLF), which decoders remove. Static pieces are
    encoded once per campaign; only the personalised ones per recipient.
    Output lines are at most 76 characters, CRLF-terminated.
    """
    if not text:
        return b""
    encoded = binascii.b2a_qp(text.encode("utf-8"), False, True, False)
    if text.endswith("\n"):
        return encoded.replace(b"\n", b"\r\n")
    last = encoded.rfind(b"\n") + 1
    if len(encoded) - last >= 76:
        line = encoded[last:]
        cut = position = 0
        while position < len(line):
            step = 3 if line[position] == 61 else 1  # 61 is "="
            if position + step > 75:
                break
            position += step
            cut = position
        encoded = encoded[:last] + line[:cut] + b"=\n" + line[cut:]
    return (encoded + b"=\n").replace(b"\n", b"\r\n")
