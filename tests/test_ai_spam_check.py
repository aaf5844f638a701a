"""The spam-wording check (app/ai/spam_check.py): what it flags, in words, and what it leaves alone."""
import pytest

from app.ai.spam_check import flags


@pytest.mark.parametrize("text", [
    "Free shipping on spring bulbs",              # "free" alone is ordinary shop wording
    "Our spring workshop is open! Join us.",      # one exclamation mark is fine
    "Hello {{ contact.FIRST_NAME }}, news from the NHS and BBC",  # tags left out; two acronyms are not shouting
    "See https://EXAMPLE.COM/SPRING-SALE-NOW for the programme",
    "Guarantee your seat: the re-planting day",   # "guarantee" is not "guaranteed"; "re-planting" is no "RE:"
    "A winning idea for your borders",
    "Costs $5 per ticket",
    "Where are you going this summer?",
    "",
])
def test_clean_wording_has_no_flags(text):
    assert flags(text) == []


@pytest.mark.parametrize("text, expected", [
    ("ACT NOW: HUGE SALE TODAY", ["Shouting: 5 words in capitals (ACT, NOW, HUGE…)", "Spam phrase: “ACT NOW”"]),
    ("THIS IS A SALE", ["Shouting: mostly capital letters"]),
    ("100% FREE shipping!!!", ["Repeated punctuation: “!!!”", "Spam phrase: “100% FREE”"]),
    ("Really?!", ["Repeated punctuation: “?!”"]),
    ("Wow! Great! Thanks!", ["3 exclamation marks: one at most reads calmer"]),
    ("RE: your order", ["Looks like a reply or forward (“RE:”) but is not one"]),
    ("Fwd: the spring plan", ["Looks like a reply or forward (“Fwd:”) but is not one"]),
    ("Win $$$ this spring", ["Money symbols: “$$$”"]),
    ("Costs $5, $10 or $20", ["Money symbols: 3 in one line"]),
    ("Risk free trial, click-here", ["Spam phrase: “Risk free”", "Spam phrase: “click-here”"]),
    ("Limited-time offer: winners announced", ["Spam phrase: “Limited-time”", "Spam phrase: “winners”"]),
    ("Guaranteed results, no credit check, urgent", ["Spam phrase: “Guaranteed”", "Spam phrase: “urgent”",
                                                     "Spam phrase: “no credit check”"]),
])
def test_spam_wording_is_flagged_in_words(text, expected):
    assert sorted(flags(text)) == sorted(expected)


def test_phrases_match_whole_words_in_any_case_and_spacing():
    assert flags("CLICK   HERE") and flags("click\nhere") and flags("Click-Here")
    assert flags("clickhere") == []
    assert flags("the winnerstown fair") == []
    assert flags("an act nowhere near finished") == []


def test_a_long_body_may_have_a_few_exclamation_marks():
    body = ("We planted tulips this week! " + "The borders are filling in nicely and the roses are budding. " * 8
            + "See you at the workshop!")
    assert len(body) > 400 and flags(body) == []
    assert flags(body + " Bring gloves! And tea! And cake!") == \
        [f"{body.count('!') + 3} exclamation marks: one at most reads calmer"]


def test_a_fake_reply_is_found_at_the_start_of_any_line():
    assert flags("Spring news\nRe: the workshop") == ["Looks like a reply or forward (“Re:”) but is not one"]
    assert flags("About re: the workshop") == []
