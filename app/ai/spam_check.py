"""A simple spam-wording check of a subject line, a preheader or a body's text, with words for the writer.

flags(text) lists what spam filters and readers frown at: shouting (words in capitals), runs of "!" and "?",
known spam phrases, a fake "RE:" or "FWD:", and money symbols. It blocks nothing: the builder shows the flags
beside an AI suggestion (or a proposal) so the writer decides.

The phrases are a short list after the body and subject rules of public filter rule sets (SpamAssassin's
"spam phrases" family and the like): wording that is rarely anything but a sales push. Each phrase matches as
whole words, in any case, with any spacing or hyphen between its words ("risk free" = "Risk-Free"). The word
"free" alone is not on it: "Free shipping on spring bulbs" is ordinary shop wording, and a filter that
flagged it would be ignored; "100% free", "free gift", "free money" are. Merge tags ({{ first_name }}) and
web addresses are left out before checking, so a tag or a link never counts as shouting.
"""
import re

SPAM_PHRASES = (
    "act now", "100% free", "risk-free", "click here", "limited time", "winner", "guaranteed",
    "no credit check", "cash bonus", "urgent", "buy now", "order now", "call now", "apply now",
    "free gift", "free money", "totally free", "absolutely free", "make money", "earn money", "extra income",
    "double your", "no obligation", "no catch", "once in a lifetime", "while supplies last",
    "you have been selected", "you've been selected", "you have won", "you've won", "congratulations",
    "dear friend", "this is not spam", "this isn't spam", "100% satisfied", "lowest price", "best price",
    "miracle", "work from home", "weight loss", "special promotion", "exclusive deal", "incredible deal",
    "cash prize", "get paid", "no fees", "no hidden costs", "instant access", "don't delete",
    "what are you waiting for", "last chance", "expires today", "only today",
)

# A phrase's words, any case, whole words, any run of spaces or hyphens between them.
_PHRASES = [(phrase, re.compile(r"(?<![\w%])" + r"[\s\-]+".join(re.escape(word) for word in re.split(r"[\s\-]+", phrase))
                                + r"s?(?!\w)", re.IGNORECASE)) for phrase in SPAM_PHRASES]
_MERGE_TAG = re.compile(r"\{\{.*?\}\}|\{%.*?%\}", re.DOTALL)
_URL = re.compile(r"\b(?:https?://|www\.)\S+", re.IGNORECASE)
_WORD = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)?")
_PUNCTUATION_RUN = re.compile(r"[!?¡¿]*(?:!!|\?\?|!\?|\?!)[!?¡¿]*")
_FAKE_REPLY = re.compile(r"^\s*(re|fwd?|aw|wg|tr)\s*:", re.IGNORECASE | re.MULTILINE)
_CURRENCY_RUN = re.compile(r"[$€£¥₹]{2,}")
_CURRENCY = re.compile(r"[$€£¥₹]")

SHOUTING_WORDS = 3          # words of 3+ capital letters that make shouting
SHORT_TEXT = 150            # characters: a subject line or preheader, where one "!" is the most
MOSTLY_CAPITALS = 0.7       # share of capital letters that make a text shouted
MOSTLY_CAPITALS_MIN_LETTERS = 8
MONEY_SYMBOLS = 3           # in a short text


def _readable(text):
    """The text without merge tags and web addresses."""
    return _URL.sub(" ", _MERGE_TAG.sub(" ", text or ""))


def _shouting(text):
    capitals = [word for word in _WORD.findall(text) if len(word) >= 3 and word.isupper()]
    if len(capitals) >= SHOUTING_WORDS:
        return f"Shouting: {len(capitals)} words in capitals ({', '.join(capitals[:3])}{'…' if len(capitals) > 3 else ''})"
    letters = [char for char in text if char.isalpha()]
    if len(letters) >= MOSTLY_CAPITALS_MIN_LETTERS and \
            sum(char.isupper() for char in letters) / len(letters) >= MOSTLY_CAPITALS:
        return "Shouting: mostly capital letters"
    return None


def _punctuation(text):
    found = []
    runs = _PUNCTUATION_RUN.findall(text)
    if runs:
        found.append(f"Repeated punctuation: “{max(runs, key=len)}”")
    marks = text.count("!")
    allowed = 1 if len(text) <= SHORT_TEXT else max(1, len(text) // 200)
    if marks > allowed and not (runs and marks == sum(run.count("!") for run in runs)):
        found.append(f"{marks} exclamation marks: one at most reads calmer")
    return found


def flags(text):
    """Words for the writer about spam-like wording in `text` (a subject, preheader or body text);
    [] when it reads clean."""
    text = _readable(text)
    if not text.strip():
        return []
    found = []
    shouting = _shouting(text)
    if shouting:
        found.append(shouting)
    found += _punctuation(text)
    seen = set()
    for phrase, pattern in _PHRASES:
        match = pattern.search(text)
        if match and phrase not in seen:
            seen.add(phrase)
            found.append(f"Spam phrase: “{match.group(0).strip()}”")
    fake = _FAKE_REPLY.search(text)
    if fake:
        found.append(f"Looks like a reply or forward (“{fake.group(0).strip()}”) but is not one")
    run = _CURRENCY_RUN.search(text)
    if run:
        found.append(f"Money symbols: “{run.group(0)}”")
    elif len(text) <= SHORT_TEXT and len(_CURRENCY.findall(text)) >= MONEY_SYMBOLS:
        found.append(f"Money symbols: {len(_CURRENCY.findall(text))} in one line")
    return found
