"""The words of each bounce reason (sisimai's vocabulary), and the order they are tried in."""
import re


def _rx(*phrases):
    return re.compile("|".join(f"(?:{p})" for p in phrases))


# Each pattern runs over the lower-cased diagnostic with whitespace collapsed.
PATTERNS = {
    "mailboxfull": _rx(
        r"mail ?box (?:is )?(?:full|over ?quota|size limit|exceeds? (?:the )?(?:quota|size)|has exceeded)",
        r"(?:user|recipient|account|mailbox)(?:'s)? (?:\S+ ){0,3}(?:over ?quota|is full|quota exceeded|storage (?:is )?full)",
        r"over ?quota", r"quota (?:exceeded|violation|full)", r"exceeds? (?:the )?(?:\S+ )?quota",
        r"(?:full|fully loaded) (?:mail ?box|mail ?folder)", r"mail ?folder is full",
        r"out of (?:storage )?space", r"not enough (?:storage|space)", r"insufficient (?:storage|disk ?space|space)",
        r"exceeded storage allocation", r"storage quota", r"disk quota", r"too much mail data",
        r"user has (?:too many messages|exceeded)", r"mailbox limit", r"box is full", r"\bmbox full",
        r"is over the allowed quota", r"no space left", r"inbox (?:is )?full", r"account is full",
        r"exceeded (?:the|his|her|its) (?:mailbox|storage)"),
    "mesgtoobig": _rx(
        r"message (?:is )?too (?:big|large)", r"message (?:size|length) (?:exceeds|too)", r"size limit",
        r"exceeds? (?:the )?(?:maximum )?(?:message )?size", r"message exceeds .*(?:size|limit)",
        r"mail (?:is )?too large", r"message file too big", r"too big for", r"maximum (?:allowed )?message size"),
    "exceedlimit": _rx(r"message length exceeds administrative limit", r"exceed(?:s|ed)? recipients? limit"),
    "suspend": _rx(
        r"(?:account|mailbox|user|address|recipient)(?: \S+){0,3} (?:has been |is |was )?(?:temporarily )?"
        r"(?:disabled|suspended|deactivated|frozen|locked|blocked for)",
        r"(?:disabled|suspended|deactivated|inactive|expired|frozen) (?:mail ?box|account|user|recipient)",
        r"account (?:is )?(?:disabled|suspended|inactive|not active|has expired|expired)",
        r"recipient (?:is )?suspended", r"mailbox (?:unavailable|currently suspended) due to",
        r"has been disabled or discontinued", r"is (?:currently )?(?:suspended|deactivated)",
        r"user suspended", r"boite du destinataire archivee", r"service (?:has been )?(?:stopped|suspended)"),
    "hasmoved": _rx(r"\bhas moved\b", r"address (?:has )?changed", r"no longer (?:available|valid) at this address,? (?:try|use)"),
    "norelaying": _rx(
        r"relay(?:ing)? (?:access )?(?:denied|not (?:allowed|permitted)|prohibited|refused)",
        r"(?:not|unable to|cannot|can't|we do not|will not) relay", r"not permitted to relay",
        r"relay not (?:allowed|permitted)", r"no relaying", r"relaying (?:mail )?(?:to \S+ )?(?:is )?not allowed",
        r"not a gateway", r"not in my list of (?:allowed )?rcpthosts", r"isn't allowed to relay",
        r"due to the following smtp relay error",
        r"sorry, that domain isn't in my list of allowed rcpthosts"),
    "authfailure": _rx(
        r"\bspf\b.{0,40}(?:fail|did not pass|not pass|check|reject|validation|policy)",
        r"(?:fail(?:ed|s|ure)?|did not pass|not pass) (?:\S+ ){0,4}\bspf\b", r"sender policy framework",
        r"\bdkim\b(?!-signature).{0,40}(?:fail|invalid|not pass|did not verify|verification|reject)",
        r"(?:fail(?:ed|s|ure)?|did not pass|invalid) (?:\S+ ){0,4}\bdkim\b(?!-signature)",
        r"\bdmarc\b.{0,60}(?:fail|reject|policy|quarantine|not pass)",
        r"(?:fail(?:ed|s)?|did not pass|due to) (?:\S+ ){0,5}\bdmarc\b", r"domain-based message authentication",
        r"5\.7\.(?:2[0-46-9]|30|515)\b", r"4\.7\.(?:2[0-46-9]|3[0-2])\b",
        r"fails? to pass (?:\S+ )?authentication", r"does not have authentication information",
        r"(?:does not|doesn't|did not|didn't) (?:pass|meet) .{0,30}authentication",
        r"authentication (?:check|results?) (?:failed|did not)", r"does not designate .{0,80} as permitted sender",
        r"sender is not (?:authorized|permitted) by", r"unauthenticated (?:e-?mail|message)s? from",
        r"\bper (?:its|it's|the) spf", r"\b(?:bad|invalid|no) spf\b"),
    "requireptr": _rx(
        r"\bptr\b", r"reverse (?:dns|lookup|(?:dns )?resolution|mapping|name)", r"\brdns\b", r"\bdns ?ptr\b",
        r"(?:cannot|can't|could not|couldn't|unable to) (?:find|resolve|look ?up) (?:your|the) (?:host ?name|ip|domain|address)",
        r"(?:client|your) (?:host|ip) (?:\S+ )?(?:name )?(?:has no|does not have|doesn't have|without)",
        r"(?:no|not have an?|without) (?:valid )?(?:host ?name|reverse)", r"unresolvable (?:host|address|ip)",
        r"host ?name (?:lookup )?(?:failed|does not match|mismatch|is not resolvable)",
        r"\bip name (?:lookup|possibly forged)", r"5\.7\.25\b", r"looks like a dynamic|dynamic (?:ip|address|pool)",
        r"generic (?:host ?name|rdns)", r"(?:ip|client) (?:address )?(?:is|looks|appears) (?:to be )?(?:dynamic|residential)"),
    "userunknown": _rx(
        r"(?:user|recipient|mailbox|address|account|addressee|mail ?box name)(?:'s)? (?:\S+ ){0,2}(?:unknown|not found|does not exist|doesn't exist|not exist|is not known|not known|is invalid|invalid)",
        r"(?:unknown|invalid|non-?existent|no such|nonexisting|non existing|illegal|bad) (?:local )?(?:\S+ )?(?:user|recipient|mailbox|address|account|person|addressee|email address|e-mail address|destination mailbox)",
        r"no such (?:user|mailbox|recipient|address|person|local user|account)",
        r"(?:user|recipient|address|mailbox|account) (?:\S+ ){0,2}(?:does not|doesn't|do not) exist",
        r"does not exist\b", r"no longer (?:exists|in use|valid|active|available)",
        r"no mailbox (?:here|by that name|found|available)", r"mailbox (?:\S+ )?(?:unavailable|not available)",
        r"not a (?:known|valid|local) (?:user|recipient|mailbox|address)", r"is not a valid (?:mailbox|user|recipient)",
        r"(?:user|recipient|mailbox) lookup (?:failed|rejected)",
        r"recipient address rejected: (?:user unknown|unknown user|invalid|access denied|undeliverable|userunknown|not)",
        r"(?:not|isn't) (?:a )?(?:valid|known|active) (?:user|mailbox|recipient|address)",
        r"bad (?:destination )?(?:mailbox|recipient|user|address)", r"badrcptto", r"validrcptto",
        r"recipient address rejected(?:\.|$)", r"(?<!recipient )(?<!sender )address (?:rejected|invalid|unknown|not valid)",
        r"unknown (?:or illegal )?(?:alias|user|recipient|address)",
        r"no such (?:user|person|mailbox) here", r"(?:mailbox|user) is inactive",
        r"there is no one at this address", r"recipient (?:does not|not) exist",
        r"email account that you tried to reach does not exist", r"utilisateur inconnu", r"benutzer unbekannt",
        r"resolver\.adr\.recipnotfound", r"recipientnotfound", r"recipient not found",
        r"(?:the|this) (?:e-?mail )?address (?:\S+ )?(?:is|was) (?:not|no longer) (?:valid|in use|available)",
        r"invalid recipient", r"user not (?:found|listed|local|exist)", r"mailbox not (?:found|present|exist)",
        r"recipient (?:unknown|is not local|not ok)", r"has no (?:mail)?box", r"not our customer",
        r"no user (?:here )?(?:by that name|with that name)", r"user missing home directory",
        r"addressee unknown", r"no account by that name", r"vdeliver: invalid", r"not listed in (?:the )?(?:\S+ )?(?:directory|address book|name (?:&|and) address book)",
        r"invalid (?:\S+ ){0,3}user ?id", r"no valid recipients?",
        r"check (?:if|that|whether) (?:the )?(?:e-?mail )?address is correct",
        # more wordings of "no such mailbox" (as collected by sisimai)
        r"address not present in directory", r"can't accept user", r"destination addresses were unknown",
        r"destination server rejected recipients", r"e-?mail address could not be found",
        r"is not an active address at this host", r"mailbox unavaiable", r"no mail ?box available for this user",
        r"account unavailable", r"recipient is not accepted", r"recipient refuses to accept your mail",
        r"recipient ?notfound", r"envelope recipient has been denied", r"domain or user isn't in my list",
        r"following recipients was undeliverable", r"email name is not found", r"no longer accepts mail",
        r"badrecipientto", r"user not active", r"> not found", r"\bno \S+ in name directory",
        r"unknown local ?part", r"nessun utente simile", r"no existe (?:dicha persona|ese usuario)",
        r"adresse nicht gefunden wurde"),
    "filtered": _rx(
        r"\bfiltered\b", r"(?:rejected|refused|blocked|denied) by (?:the )?(?:recipient|user|mailbox)(?:'s)? (?:\S+ )?(?:filter|rules?|settings?|preferences?)",
        r"user refuses", r"recipient (?:refuses|refused|has blocked|does not accept)",
        r"(?:user|recipient) (?:has )?(?:blocked|rejected) (?:you|your|this|the sender)",
        r"not accept(?:ing)? mail from (?:you|this sender)", r"due to the (?:recipient|user)'s (?:filter|settings)",
        r"is not accepting any mail", r"not accepting mail with", r"user reject",
        r"refused due to recipient preferences",
        r"only accepting mail from specific"),
    "hostunknown": _rx(
        r"host (?:or domain )?(?:name )?(?:not found|unknown|does not exist)", r"unknown (?:host|domain)",
        r"domain (?:name )?(?:not found|does not exist|doesn'?t exist|unknown|is invalid|invalid|not exist)",
        r"no such (?:domain|host)", r"unrouteable (?:mail )?domain", r"name or service not known",
        r"nxdomain", r"(?:domain|host) (?:\S+ )?has no (?:mx|dns|a|valid)", r"no (?:mx|dns) (?:record|entry)",
        r"(?:domain|host) (?:lookup|resolution) failed", r"unable to resolve (?:host|domain|mx)",
        r"invalid (?:domain|host)", r"\bdns(?: lookup)? (?:error|failure)\b.*(?:not found|non-?existent|nxdomain)",
        r"recipient domain (?:\S+ )?(?:does not|doesn't) exist", r"mail for \S+ loops back to myself",
        # Exim routes before it connects: an unroutable address or dead MX hosts mean no such domain
        r"unroute?able address", r"mx records point to non-existent hosts", r"domain (?:is not reachable|must exist)",
        r"mail domain mentioned in email address is unknown",
        r"domain (?:\S+ )?(?:is )?not (?:hosted|found|configured|served) (?:here|by)",
        r"domain (?:isn't|is not) in my list", r"unknown mail domain",
        r"(?<![@\w.-])(?:[a-z0-9-]+\.)+[a-z]{2,} (?:does not|doesn't) exist",
        r"account or domain may not exist"),
    "virusdetected": _rx(r"virus (?:detected|found|infected|alert)", r"(?:contains?|infected (?:with|by)|found) (?:an? )?virus",
                         r"malware", r"\binfected\b", r"trojan"),
    "spamdetected": _rx(
        r"\bspam(?!haus|cop)", r"\bjunk\b", r"content filter", r"\bbulk (?:mail|e-?mail)", r"unsolicited", r"\buce\b", r"scor(?:e|ed) (?:too high|as)",
        r"content (?:rejected|refused|not accepted)", r"message (?:content )?(?:rejected|refused) (?:as|due to|because)",
        r"suspicious", r"phish", r"classified as", r"looks like (?:spam|junk)", r"mail appears to be",
        r"high (?:probability|likelihood)", r"reputation of (?:the )?(?:content|url|link)", r"\burl\b.*(?:blocked|listed|blacklist)"),
    "policyviolation": _rx(
        r"\bpolicy\b", r"prohibited", r"not allowed", r"(?:attachment|file type|extension)s? (?:\S+ )?(?:not allowed|blocked|rejected|forbidden)",
        r"forbidden", r"violat(?:es|ion)", r"\bbanned\b", r"\bdisallowed\b", r"administrative prohibition"),
    "badreputation": _rx(r"(?:bad|poor|low|negative) reputation", r"reputation", r"sender score"),
    "blocked": _rx(
        r"\bblock(?:ed|list|listed)?\b", r"black ?list", r"deny ?list", r"\bdnsbl\b", r"\brbl\b", r"spamhaus", r"spamcop",
        r"barracuda ?(?:central|reputation)", r"sorbs", r"listed (?:in|at|on|by)\b", r"client host (?:\S+ )?(?:rejected|blocked|refused)",
        r"access denied", r"(?:connection|session) (?:rejected|denied)", r"refused to talk",
        r"(?:connection|session) refused (?:by|due|because|from)",
        r"(?:ip|ip address|client|host|network|server) (?:\S+ ){0,3}(?:is |has been )?"
        r"(?:blocked|banned|refused|not (?:allowed|permitted))",
        r"connection (?:\S+ ){0,3}(?:is |has been )?(?:blocked|banned|not (?:allowed|permitted))",
        r"your (?:ip|server|host|network|domain|access)", r"not (?:allowed|permitted|authorized) to (?:send|connect|deliver)",
        r"(?:currently|temporarily) (?:deferred|rejected|blocked)", r"\bdenied\b", r"\bban(?:ned)?\b",
        r"helo (?:command )?rejected", r"(?:ehlo|helo) .*(?:rejected|invalid|refused)"),
    "rejected": _rx(
        r"sender (?:address )?(?:rejected|refused|denied|invalid|unknown|not (?:allowed|accepted|permitted|verified))",
        r"(?:invalid|unknown|bad|blocked|rejected) sender", r"domain of sender (?:address )?(?:\S+ )?(?:does not|doesn't) (?:exist|resolve)",
        r"sender (?:verify|verification|address verification) (?:failed|failure)", r"sender (?:domain|address) (?:\S+ )?(?:does not|doesn't) exist",
        r"mail from (?:\S+ )?(?:rejected|refused|denied)", r"from address (?:\S+ )?(?:rejected|invalid|not)",
        r"envelope (?:sender|from) (?:\S+ )?(?:rejected|invalid|refused|denied)", r"return path", r"sender blacklisted",
        r"address (?:\S+ )?(?:not|isn't) (?:allowed|accepted) (?:as|for) (?:a )?sender",
        r"from: domain is invalid", r"invalid domain, see <url", r"does not accept mail from",
        r"administrative prohibition", r"mail from not owned by user", r"emetteur invalide"),
    "toomanyconn": _rx(r"too many (?:concurrent |simultaneous |open )?(?:connections|sessions)", r"connection limit",
                        r"too many (?:smtp )?sessions", r"max(?:imum)? (?:number of )?connections"),
    "speeding": _rx(r"rate ?limit", r"too fast", r"too many (?:messages|emails|mails|recipients)",
                    r"throttl", r"slow down", r"receiving mail (?:at a rate|too quickly)", r"exceeded (?:the )?(?:rate|hourly|daily)"),
    "expired": _rx(
        r"(?:delivery|message|retry) (?:time )?(?:has )?expired", r"(?:message|mail) (?:\S+ ){0,2}expired",
        r"retry (?:time|timeout) (?:not reached|exceeded)", r"queue(?:d)? (?:too long|for too long)",
        r"(?:could not|couldn't|unable to) be delivered (?:with)?in \d+", r"undeliverable for \d+ days",
        r"been delayed", r"delivery (?:is|has been) delayed", r"giving up", r"gave up", r"time(?:d)? ?out",
        r"retry(?:ing)? (?:failed|expired)", r"delivery (?:attempts|time) (?:will continue|has expired)",
        r"could not deliver (?:for|within)", r"maximum time in queue", r"was not delivered within",
        r"have been failing for a long time", r"server did not respond", r"could not find a gateway",
        r"not been collected after", r"not reachable within the allowed queue period", r"multiple retries"),
    "networkerror": _rx(
        r"connection (?:timed out|refused|reset|closed|lost|dropped)", r"no route to host", r"network is unreachable",
        r"(?:unable|failed) to connect", r"could not connect", r"can't connect", r"mail (?:forwarding )?loop",
        r"loop(?:s)? (?:back|detected)", r"too many hops", r"hop count exceeded", r"routing loop",
        r"malformed (?:or unexpected )?(?:dns|name server) reply", r"dns (?:lookup )?(?:error|failure|problem|temporary)",
        r"temporary (?:dns|lookup) failure", r"no answer from", r"lost connection", r"host is unreachable",
        r"unreachable", r"connect to \S+ .*(?:refused|timed out)", r"host name lookup failure",
        r"host not found, try again", r"unable to resolve route", r"unrouteable mail domain", r"message looping",
        r"dns records for the destination computer could not be found", r"forwarding loop"),
    "systemfull": _rx(r"(?:disk|system|spool|file ?system) (?:is )?full", r"insufficient system (?:storage|resources)",
                       r"out of disk", r"no space on device"),
    "systemerror": _rx(
        r"system error", r"server error", r"internal (?:server )?error", r"configuration error", r"misconfigur",
        r"temporary (?:local )?(?:failure|problem|error)", r"local error", r"try (?:again )?later",
        r"service (?:not available|unavailable|temporarily unavailable)", r"mailer not available",
        r"i/o error", r"unexpected error", r"(?:resources|resource) (?:temporarily )?unavailable",
        r"transaction failed", r"system (?:is )?(?:busy|overloaded|not available)", r"server (?:is )?busy"),
    "contenterror": _rx(r"header", r"\bmime\b", r"8-?bit", r"character set", r"encoding", r"line too long",
                         r"bare (?:lf|linefeed|cr)", r"(?:invalid|malformed|illegal) (?:message|content)"),
    "notaccept": _rx(
        r"(?:does not|doesn't|do not|don't|will not|won't) accept (?:any )?(?:e-?)?mail", r"null mx",
        r"(?<!is )not accepting (?:any )?(?:e-?)?mail(?! with| from)", r"no (?:mail|smtp) service", r"accepts no mail",
        r"5\.1\.10\b", r"no mx (?:record )?(?:found|for)", r"this (?:domain|host) (?:\S+ )?(?:does not|doesn't) (?:receive|accept)"),
    "syntaxerror": _rx(r"syntax error", r"command (?:unrecognized|not recognized|not implemented)", r"bad command",
                        r"unrecognized command", r"invalid command", r"bad sequence of commands", r"line too long"),
    "mailererror": _rx(r"\bprocmail\b", r"command died", r"mailer error", r"\bpipe to\b", r"exit (?:status|code)",
                        r"x-unix;", r"unknown mailer", r"mailer (?:\S+ )?(?:failed|died)", r"command (?:output|failed)",
                        r"program (?:error|failed)"),
    "securityerror": _rx(
        r"authentication (?:is )?required", r"(?:must|need to|please) (?:be )?authenticat", r"auth(?:entication)? (?:failed|failure)",
        r"(?:tls|starttls|encryption|ssl) (?:is )?required", r"must issue a starttls", r"\btls\b.*(?:fail|error|handshake)",
        r"certificate", r"security (?:violation|policy)"),
}

# The order matters: the first match wins. Specific mailbox states first,
# sender-side problems (auth, PTR, relay, a refused envelope sender) before
# "user unknown" because their replies often name the recipient too, then
# the broad words last.
ORDER = (
    "mailboxfull", "mesgtoobig", "exceedlimit", "suspend", "hasmoved", "norelaying", "authfailure", "requireptr",
    "rejected", "notaccept", "hostunknown", "userunknown", "filtered", "virusdetected", "spamdetected",
    "badreputation", "toomanyconn", "speeding", "blocked", "policyviolation", "systemfull", "networkerror",
    "expired", "mailererror", "syntaxerror", "securityerror", "systemerror", "contenterror",
)


def text_reasons(text):
    """Every reason whose words appear in `text`, in ORDER."""
    return [reason for reason in ORDER if PATTERNS[reason].search(text)]
