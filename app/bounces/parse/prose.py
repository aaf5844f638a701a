"""Bounces without a DSN (qmail, Exim, old Postfix and Sendmail, Exchange/Notes, Yahoo, Japanese
carriers ...): recognised by their sender, subject and words; the recipients and the server's
words are found in the text before the returned message. And RFC 3834 auto-replies, which are
not bounces."""
import re

from app.bounces.parse.dsn import smtp_command
from app.bounces.parse.mime import ADDRESS
from app.bounces.parse.mime import clean_address
from app.bounces.parse.mime import cut_original
from app.bounces.parse.mime import header
from app.bounces.parse.mime import unfold
from app.bounces.parse.report import RecipientResult

SYSTEM_LOCALS = ("mailer-daemon", "postmaster", "root", "daemon", "nobody", "bounce", "bounces", "noreply",
                 "no-reply", "abuse", "double-bounce", "mail-daemon", "maildaemon", "administrator")

AUTO_REPLY_SUBJECT = re.compile(
    r"^(?:auto(?:matic)?[ -]?(?:reply|response|antwort)|out of (?:the )?office|ooo\b|away from|vacation|"
    r"abwesenheit|absence|réponse automatique|respuesta automática|自動応答|autoreply|auto:)", re.I)
BOUNCE_SUBJECT = re.compile(
    r"undeliver|undelivered|delivery (?:status notification|failure|has failed|failed|problem|report|notification)|"
    r"returned mail|mail delivery (?:failed|failure|system|subsystem)|failure notice|delivery failure|"
    r"could not (?:be )?deliver|non[- ]?delivery|nondeliverable|mail system error|returned to sender|"
    r"message not delivered|warning: could not send|delivery notification|rejected|bounce|error sending|"
    r"message you sent|mail could not|failed delivery|fehlgeschlagen|unzustellbar|non remis|non recapitabile|"
    r"error|failure|problem|returned|delivery|"
    # Japanese carriers and MTAs (au, docomo, SoftBank, Biglobe, m-FILTER ...) often say it only in Japanese
    r"配信(?:エラー|失敗|不能|できません)|不達|送信(?:エラー|失敗)|返送|エラーメール|届きません|配送(?:エラー|失敗)|"
    r"未配達|宛先不明|宛先エラー", re.I)
BOUNCE_SENDER = re.compile(
    r"mailer[-_ ]?daemon|post_?master|mail ?delivery|mail ?administrator|maildelivery|mailerdaemon|bounce|"
    r"mail ?system|mdaemon|root@|mail ?router|microsoftexchange|notification|mailmaster|smtp|bounces",
    re.I)
BODY_BOUNCE_HINT = re.compile(
    r"could not be delivered|couldn't be delivered|was not delivered|undeliverable|delivery (?:has )?failed|"
    r"permanent (?:error|fatal|failure)|fatal errors?|unable to deliver|failed to deliver|delivery to the following|"
    r"following (?:address|recipient)|not be delivered|wasn't able to deliver|could not deliver|delivery failure|"
    r"returned to (?:the )?sender|message delivery failed|mail delivery failed|rejected|user unknown|does not exist|"
    r"was blocked|error occurred|delivery problem|bounce|smtp error|remote host said|status: ?[45]\.|"
    r"invalid (?:user|recipient|address)|no such (?:user|mailbox)|requested action not taken|mailbox (?:is )?full|"
    r"(?:recipients?|address) (?:was|were|has been) rejected|account is disabled|did not reach|"
    r"cannot be delivered|could not be sent|unknown user|no longer (?:valid|available)|"
    r"配信|届きませんでした|宛先|送信できませんでした|エラー|存在しません|受信拒否|届けられません|送れませんでした",
    re.I)


def looks_like_bounce(msg, subject, prose):
    sender = header(msg, "From")
    if header(msg, "X-Failed-Recipients"):
        return True
    if BOUNCE_SENDER.search(sender) and (BOUNCE_SUBJECT.search(subject) or BODY_BOUNCE_HINT.search(prose[:5000])):
        return True
    if header(msg, "Return-Path").strip() == "<>" and BODY_BOUNCE_HINT.search(prose[:5000]):
        return True  # the null envelope sender is reserved for delivery notifications
    if re.search(r"undeliver|delivery (?:status|failure|failed|notification)|returned mail|failure notice|"
                 r"mail delivery|non[- ]?deliver|could not be delivered", subject, re.I) \
            and BODY_BOUNCE_HINT.search(prose[:8000]):
        return True
    # Japanese carriers' own formats carry no DSN, often no null Return-Path, and may have a
    # Japanese subject: recognise them by their sender and their fixed sentences.
    head = prose[:5000]
    if CARRIER_FORMAT.search(head) and re.search(r"could not be delivered to:\s*<|recipient: <|^\s*<[^>\s]+@",
                                                 head, re.I | re.M):
        return True
    senders = sender + " " + header(msg, "Reply-To") + " " + header(msg, "Message-ID")
    if CARRIER_SENDER.search(senders) and (CARRIER_FORMAT.search(head) or BODY_BOUNCE_HINT.search(head)):
        return True
    return False


# au/KDDI: "Your mail sent on: <date> / Could not be delivered to: <address> / As their mailbox is full."
# EZweb: "The user(s) account is disabled." / "Each of the following recipients was rejected by a remote
# mail server." (from Postmaster@ezweb.ne.jp or Postmaster@au.com, Message-ID @...ezweb.ne.jp).
CARRIER_FORMAT = re.compile(
    r"your mail (?:sent|attempted to be delivered) on:|could not be delivered to:\s*<|the user\(s\) account is|"
    r"each of the following recipients was rejected|your message was not delivered within", re.I)
CARRIER_SENDER = re.compile(
    r"postmaster@(?:[\w-]+\.)*(?:ezweb\.ne\.jp|au\.com)|[.@](?:[\w-]+\.)*dion\.ne\.jp|auone-net\.jp|"
    r"no-reply@\.|[.@]ezweb\.ne\.jp>|\.au\.com>", re.I)


def is_auto_reply(msg, subject):
    auto = header(msg, "Auto-Submitted").lower()
    if auto.startswith("auto-replied"):
        return True
    if header(msg, "X-Autoreply") or header(msg, "X-Autorespond"):
        return True
    if header(msg, "Precedence").lower() == "auto_reply":
        return True
    return bool(AUTO_REPLY_SUBJECT.search(subject or ""))


def parse_text(report, msg, prose, original):
    body = cut_original(prose)
    ignore = set()
    for name in ("From", "To", "Reply-To", "Sender", "Return-Path", "Delivered-To", "Cc"):
        for address in ADDRESS.findall(header(msg, name)):
            ignore.add(address.lower())
    sender_of_original = clean_address(header(original, "From")) if original is not None else ""
    if sender_of_original:
        ignore.add(sender_of_original)
    candidates = []
    failed_header = header(msg, "X-Failed-Recipients")
    for address in ADDRESS.findall(failed_header):
        if address.lower() not in candidates:
            candidates.append(address.lower())
    if not candidates:
        for match in ADDRESS.finditer(body):
            address = match.group(0).lower().rstrip(".")
            local = address.split("@")[0]
            if address in ignore or local in SYSTEM_LOCALS or address in candidates:
                continue
            if is_message_id(body, match):
                continue
            candidates.append(address)
    candidates = strongest(body, candidates)
    if not candidates and original is not None:
        to = clean_address(header(original, "To"))
        if to:
            candidates.append(to)
    if not candidates:
        # A bounce for someone we cannot name: still a bounce, matched by token or Message-ID.
        candidates.append("")
    segments = split_by_address(body, [c for c in candidates if c])
    for address in candidates:
        words = segments.get(address, "") if address else body
        report.results.append(RecipientResult(email=address, diagnostic=unfold(words)[:2000],
                                              command=smtp_command(words), remote_mta=remote_host(words)))


def strongest(body, candidates):
    """Keep the addresses a bounce lists as failed recipients, over ones it merely mentions.

    Strong: an address starting its line ("<a@b>:", "a@b on ...", Exim's indented list).
    Weak: one only seen after a header-like label ("To: a@b" in Exchange's summary of
    the original) or next to "contact". With any strong address, the weak and plain
    ones go; otherwise the weak ones go when others remain.
    """
    if len(candidates) < 2:
        return candidates
    strength = {}
    for address in candidates:
        best = None
        for line in body.splitlines():
            at = line.lower().find(address)
            if at < 0:
                continue
            head = line[:at]
            if re.match(r"^\s*(?:to|from|cc|bcc|subject|sent|reply-to|date|sender)\s*:", head, re.I) or \
                    re.search(r"contact|\bmail to\b|\bwrite to\b", head, re.I):
                level = 0
            elif re.fullmatch(r"[\s<\"'(>*-]*", head):
                level = 2
            else:
                level = 1
            best = level if best is None else max(best, level)
        strength[address] = 1 if best is None else best
    top = max(strength.values())
    return [a for a in candidates if strength[a] == top] if top > 0 else candidates


def is_message_id(text, match):
    before = text[max(0, match.start() - 1):match.start()]
    after = text[match.end():match.end() + 1]
    line_start = text.rfind("\n", 0, match.start()) + 1
    line = text[line_start:match.start()].lower()
    return (before == "<" and after == ">" and ("message-id" in line or "id:" in line)) or "message-id" in line


def split_by_address(text, addresses):
    """{address: the text after each mention of it, up to the next mention of another address}."""
    if not addresses:
        return {}
    pattern = re.compile("|".join(re.escape(a) for a in sorted(addresses, key=len, reverse=True)), re.I)
    hits = list(pattern.finditer(text))
    out = {a: "" for a in addresses}
    # Text before the first mention (the intro) counts for the first address only when it is the only one.
    for index, hit in enumerate(hits):
        address = hit.group(0).lower()
        end = len(text)
        for later in hits[index + 1:]:
            if later.group(0).lower() != address:
                end = later.start()
                break
        segment = text[hit.end():end]
        if segment.strip() and segment not in out[address]:
            out[address] += " " + segment
    if len(addresses) == 1:
        address = addresses[0]
        out[address] = text if not out[address].strip() else (out[address] + " " + text[:hits[0].start()]
                                                                if hits else text)
    return out


def remote_host(text):
    match = re.search(r"(?:host|server|mx)\s+([\w.-]+\.[a-z]{2,})\s*(?:\[[\d.:a-f]+\])?\s*(?:said|says|:)",
                      text or "", re.I)
    return match.group(1) if match else ""
