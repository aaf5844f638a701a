"""Address validation at import: the team's policy (Team.import_validation) applied to each chunk.

    off      the syntax check every import makes, nothing more (the default: no DNS lookups)
    flag     every address is validated (app.deliverability.validation); invalid and risky ones are
             imported and tagged with their verdict
    reject   invalid ones (bad syntax, no such domain, a null MX) are not imported: each goes to the
             import's rejects file with the reason in words; risky ones are imported and tagged

The flag is a tag, "validation: risky (role)" or "validation: invalid (no domain + typo)": tags are what
a team already filters contacts by, builds segments from and acts on in bulk, they show on the contact
page, and a person removes one when they have looked. A DNS server that does not answer makes an address
risky, never invalid, so a slow resolver never loses a row.

Each chunk's addresses are validated in one validate_many call: its domains are looked up at the same
time, each once, and later chunks find them in the validation cache.
"""
from app.deliverability import validation

POLICIES = {
    "off": "Off: only check that each address is well-formed",
    "flag": "Flag: import every address; tag the invalid and risky ones with the reason",
    "reject": "Reject invalid: leave invalid addresses out (listed in the rejects file); tag the risky ones",
}
DEFAULT = "off"
TAG_PREFIX = "validation: "
SHORT_REASONS = {"syntax": "syntax", "no_domain": "no domain", "null_mx": "null MX", "disposable": "disposable",
                 "role": "role", "dns_timeout": "DNS timeout", "typo": "typo"}


def check_policy(value):
    """`value` if it names a policy, else None."""
    return value if value in POLICIES else None


def tag_name(verdict):
    """The tag of a flagged verdict: "validation: risky (role + typo)" (at most 64 characters)."""
    return f"{TAG_PREFIX}{verdict.status} ({' + '.join(SHORT_REASONS[r] for r in verdict.reasons)})"


def reject_reason(verdict):
    text = f"Not imported: {verdict.message}"
    return text


def screen(policy, chunk, rejects):
    """Apply `policy` to a chunk of import rows (row number, email, ...): returns (the rows to import,
    {email: tag name} of those to flag). Rows it refuses are appended to `rejects` as
    (row number, "rejected", reason, cells)."""
    if policy not in ("flag", "reject") or not chunk:
        return chunk, {}
    verdicts = validation.validate_many([row[1] for row in chunk])
    kept, flags = [], {}
    for row, verdict in zip(chunk, verdicts):
        if verdict.status == "valid":
            kept.append(row)
        elif verdict.status == "invalid" and policy == "reject":
            rejects.append((row[0], "rejected", reject_reason(verdict), row[4]))
        else:
            kept.append(row)
            flags[row[1]] = tag_name(verdict)
    return kept, flags
