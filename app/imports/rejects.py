"""The rejects file of an import: the rows not imported as they were, each with the reason, in the source file's
own dialect (a spreadsheet opens it, and a fixed copy imports again). The reasons' words are here, since the API's
bulk upsert reads them back (given_row_errors) to say which field of which row was the problem."""
import csv
import os

from app.contacts.export import neutralise
from app.imports.services import holds_rows

BLOCKED_REASONS = {
    "unsubscribed": "Not added to lists: this address has unsubscribed.",
    "bounced": "Not added to lists: mail to this address bounced.",
    "complained": "Not added to lists: this address marked your mail as spam.",
    "suppressed": "Not added to lists: this contact is suppressed.",
    "listed": "Not added to lists: the address (or its domain) is on the suppression list.",
    "listed_new": "Not imported: the address (or its domain) is on the suppression list.",
}
DUPLICATE = "The same address appears earlier in the file; only the first row was imported."
TAG_DROPPED = "Tag not added: "  # starts every reason about a tag cell, see commit_chunk
PARTLY = "Imported without this value: "


def partly(dropped):
    return PARTLY + " ".join(dropped)


def given_row_errors(job):
    """[(index, field, message)] of a job of given rows (services.save_rows), read from its rejects file:
    the row's position in the rows given (from 0) and the name of what the message is about: "email"
    (not a valid address, a repeat of an earlier row, or on the suppression list), "lists" (not subscribed:
    unsubscribed, bounced, complained or suppressed), or, for a value left out, "name", "tags" or the
    column of a custom field, each named in the message as “title”. One entry per field left out."""
    if not (holds_rows(job) and job.rejects_path and os.path.exists(job.rejects_path)):
        return []
    with open(job.rejects_path, encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle, delimiter=job.delimiter or ",")
        header = next(reader, None) or []
        titles = header[2:]
        not_subscribed = set(BLOCKED_REASONS.values()) - {BLOCKED_REASONS["listed_new"]}
        errors = []
        for row in reader:
            if len(row) < 2 or not row[0].isdigit():
                continue
            index, message = int(row[0]) - 2, row[1]  # row numbers count a header as row 1
            if message in not_subscribed:
                errors.append((index, "lists", message))
            elif not message.startswith(PARTLY):
                errors.append((index, "email", message))
            else:
                named = [title for title in titles
                         if f"in “{title}” is not" in message or f"“{title}” is longer than" in message]
                if TAG_DROPPED in message:
                    named.append("tags")
                errors.extend((index, title, message) for title in named or ["name"])
    return errors


def rejects_writer(handle, job):
    """A CSV writer in the source file's own dialect: a semicolon file gets a semicolon rejects file,
    which the same spreadsheet (and a re-import after fixing) reads without questions."""
    return csv.writer(handle, delimiter=job.delimiter or ",")


def start_rejects(path, columns, job):
    with open(path, "w", encoding="utf-8", newline="") as handle:
        handle.write("\ufeff")  # so spreadsheet programs read it as UTF-8
        rejects_writer(handle, job).writerow(["row", "reason"] + [neutralise(c) for c in columns])


def trim_rejects(path, columns, last_row, job):
    """On resume: keep only the rejects of committed chunks. A crash between writing a chunk's
    rejects and its commit leaves rows here that the resumed run will write again."""
    if last_row == 0 or not os.path.exists(path):
        start_rejects(path, columns, job)
        return
    with open(path, encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle, delimiter=job.delimiter or ",")
        header = next(reader, None) or ["row", "reason"] + columns
        kept = [row for row in reader if row and row[0].isdigit() and int(row[0]) <= last_row]
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8", newline="") as handle:
        handle.write("\ufeff")
        writer = rejects_writer(handle, job)
        writer.writerow(header)
        writer.writerows(kept)
    os.replace(tmp, path)
