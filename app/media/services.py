"""The teams' media libraries: upload an image, find, list and delete them, and find one to serve.

An upload is decided by its bytes alone (Pillow opens it as PNG, JPEG, GIF or WebP, or it is refused),
never by the file's name or the type the browser claims. It is then re-encoded in its own format
(EXIF orientation applied first), which drops every piece of metadata (camera, GPS position, comments),
and made at most MAX_WIDTH pixels wide: twice the 600 px of an email, sharp on high-density screens.
Animated GIF and WebP keep their frames. The stored file is named by a random key, the only thing a
reader of an email sees of it.
"""
import hashlib
import io
import os
import re
import secrets
import warnings

from flask import current_app
from peewee import IntegrityError
from peewee import fn
from PIL import Image
from PIL import ImageOps
from PIL import ImageSequence
from PIL import UnidentifiedImageError

from app.db import db
from app.errors import Problem
from app.models import MediaItem

MAX_WIDTH = 1200
MAX_PIXELS = 40_000_000  # per frame; a few bytes can declare a billion pixels (a decompression bomb)
MAX_ANIMATION_PIXELS = 120_000_000  # all frames together, decoded one after another
MAX_NAME = 200
LIBRARY_LIMIT = 300  # images on one page of the library or the picker; a search finds the others
# Pillow format -> (file extension, content type). Only these are opened at all.
FORMATS = {"PNG": ("png", "image/png"), "JPEG": ("jpg", "image/jpeg"), "GIF": ("gif", "image/gif"),
           "WEBP": ("webp", "image/webp")}
CONTENT_TYPES = {extension: content_type for extension, content_type in FORMATS.values()}

# Pillow's own bomb check (a warning above the limit, an error above twice it) uses this process-wide
# value; Loft opens no image that is not an upload, so the media limit is the right one everywhere.
Image.MAX_IMAGE_PIXELS = MAX_PIXELS


class MediaProblem(Problem):
    """A refused upload or deletion, with a message naming the file."""


def media_dir():
    return current_app.config["MEDIA_DIR"]


def max_bytes():
    return current_app.config["MEDIA_MAX_MB"] * 1024 * 1024


def file_path(item):
    return os.path.join(media_dir(), str(item.team_id), f"{item.key}.{item.extension}")


# --- Looking things up ------------------------------------------------------------

def library(team, search="", limit=None):
    """The team's newest LIBRARY_LIMIT images, newest first; `search` keeps those whose name contains it
    (any case)."""
    query = MediaItem.select().where(MediaItem.team == team)
    search = (search or "").strip()
    if search:
        query = query.where(fn.LOWER(MediaItem.name).contains(search.lower()))
    return list(query.order_by(MediaItem.id.desc()).limit(limit or LIBRARY_LIMIT))


def count(team):
    return MediaItem.select().where(MediaItem.team == team).count()


def find_public(filename):
    """The item a public path /m/<key>.<ext> names, or None (an unknown key, or the wrong extension)."""
    key, dot, extension = (filename or "").rpartition(".")
    if not dot or extension not in CONTENT_TYPES:
        return None
    return MediaItem.get_or_none((MediaItem.key == key) & (MediaItem.extension == extension))


def size_label(size):
    for unit in ("bytes", "KB", "MB"):
        if size < 1024 or unit == "MB":
            return f"{size:,} {unit}" if unit == "bytes" else f"{size:,.1f} {unit}"
        size /= 1024


# --- Upload -----------------------------------------------------------------------

def clean_name(filename):
    """The file's own name (no folders), for people; never used as a path."""
    name = os.path.basename((filename or "").replace("\\", "/")).strip()
    return "".join(ch for ch in name if ch.isprintable())[:MAX_NAME]


def upload(team, user, filename, stream):
    """Store one uploaded image in the team's library; returns (item, added). `added` is False when the
    team already has this very file (same SHA-256): that item is returned and nothing is stored again.
    Raises MediaProblem, naming the file, for anything that is not a usable image."""
    name = clean_name(filename)
    if not name:
        raise MediaProblem("Choose an image file to upload.", field="files")
    data = stream.read(max_bytes() + 1)
    if len(data) > max_bytes():
        raise MediaProblem(f"“{name}” is larger than {current_app.config['MEDIA_MAX_MB']} MB. Save it smaller "
                           "(an email needs at most 1200 pixels across) and upload it again.", field="files")
    if not data:
        raise MediaProblem(f"“{name}” is empty.", field="files")
    digest = hashlib.sha256(data).hexdigest()
    existing = MediaItem.get_or_none((MediaItem.team == team) & (MediaItem.sha256 == digest))
    if existing is not None and os.path.exists(file_path(existing)):
        return existing, False
    encoded, image_format, width, height = reencode(name, data)
    extension, content_type = FORMATS[image_format]
    key = secrets.token_urlsafe(18)
    folder = os.path.join(media_dir(), str(team.id))
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"{key}.{extension}")
    partial = path + ".part"
    with open(partial, "wb") as out:
        out.write(encoded)
    try:
        with db.atomic():
            if existing is not None:  # its file was lost: this upload replaces the item
                existing.delete_instance()
            item = MediaItem.create(team=team, key=key, extension=extension, name=name, content_type=content_type,
                                    width=width, height=height, bytes=len(encoded), sha256=digest,
                                    uploaded_by=user)
        os.replace(partial, path)
    except IntegrityError:
        # The same file, uploaded at the same moment by another request of the team, was stored first.
        os.remove(partial)
        return MediaItem.get((MediaItem.team == team) & (MediaItem.sha256 == digest)), False
    except BaseException:
        if os.path.exists(partial):
            os.remove(partial)
        raise
    return item, True


def reencode(name, data):
    """(bytes, format, width, height) of `data` as a clean image, or MediaProblem naming `name`."""
    not_an_image = MediaProblem(f"“{name}” is not a PNG, JPEG, GIF or WebP image, so it was not uploaded.",
                                field="files")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=list(FORMATS))
            width, height = image.size
            if width * height > MAX_PIXELS:
                raise _too_many_pixels(name, width, height)
            frames = getattr(image, "n_frames", 1)
            if frames > 1 and width * height * frames > MAX_ANIMATION_PIXELS:
                raise MediaProblem(f"“{name}” has {frames:,} frames of {width:,} × {height:,} pixels: too much to "
                                   "show in an email. Shorten the animation or make it smaller.", field="files")
            if image.format == "JPEG":
                # A camera's photo decodes at 1/2, 1/4 or 1/8 of its size straight away, as long as both sides
                # stay at least MAX_WIDTH (whichever way up it is shown): a quarter of the memory and time.
                image.draft(image.mode, (MAX_WIDTH, MAX_WIDTH))
            image.load()
            return _encode(image, frames > 1)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        # Pillow refuses while reading the header, before anything is decoded; its message holds the size.
        declared = re.search(r"\((\d+) pixels\)", str(exc))
        raise _too_many_pixels(name, pixels=int(declared.group(1)) if declared else 0)
    except UnidentifiedImageError:
        raise not_an_image
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        if isinstance(exc, MediaProblem):
            raise
        raise MediaProblem(f"“{name}” looks like an image but cannot be read (the file is damaged or cut short). "
                           "Export it again and upload the new file.", field="files")


def _too_many_pixels(name, width=0, height=0, pixels=0):
    if width and height:
        size = f" ({width:,} × {height:,} pixels)"
    else:
        size = f" ({pixels / 1_000_000:,.0f} megapixels)" if pixels else ""
    return MediaProblem(f"“{name}” is too large an image{size}: at most {MAX_PIXELS // 1_000_000} megapixels. "
                        "Make it smaller and upload it again.", field="files")


def _fit(frame):
    """The frame at most MAX_WIDTH wide, keeping its aspect ratio."""
    if frame.width <= MAX_WIDTH:
        return frame
    height = max(1, round(frame.height * MAX_WIDTH / frame.width))
    return frame.resize((MAX_WIDTH, height), Image.Resampling.LANCZOS)


def _bare(image):
    """The image with no metadata left to write: Pillow saves some of `info` (comments, EXIF) by itself."""
    image.info = {}
    return image


def _encode(image, animated):
    image_format = image.format
    out = io.BytesIO()
    # Only what showing the image needs is carried over: the colour profile, and for GIFs their palette's
    # transparency and timing. EXIF, XMP, comments and text chunks are left behind.
    icc = image.info.get("icc_profile")
    extra = {"icc_profile": icc} if icc and image_format != "GIF" else {}
    if animated:
        frames, durations = [], []
        for frame in ImageSequence.Iterator(image):
            frames.append(_bare(_fit(frame.convert("RGBA"))))
            durations.append(frame.info.get("duration", image.info.get("duration", 100)) or 100)
        options = {"save_all": True, "append_images": frames[1:], "duration": durations,
                   "loop": image.info.get("loop", 0)}
        if image_format == "GIF":
            options["disposal"] = 2
        frames[0].save(out, format=image_format, **options, **extra)
        return out.getvalue(), image_format, frames[0].width, frames[0].height
    try:
        clean = ImageOps.exif_transpose(image)  # a copy, turned the way the camera meant
    except Exception:  # noqa: BLE001 - an unreadable EXIF block: the picture as stored is still worth keeping
        clean = image.copy()
    if image_format == "JPEG":
        clean = clean if clean.mode in ("RGB", "L") else clean.convert("RGB")
        clean = _bare(_fit(clean))
        clean.save(out, format="JPEG", quality=85, optimize=True, progressive=True, **extra)
    elif image_format == "GIF":
        if clean.width > MAX_WIDTH:
            clean = _fit(clean.convert("RGBA"))
        transparency = clean.info.get("transparency") if clean.mode == "P" else None
        _bare(clean).save(out, format="GIF", **({"transparency": transparency} if transparency is not None else {}))
    else:
        if clean.mode not in ("RGB", "RGBA", "L", "LA"):
            clean = clean.convert("RGBA")
        clean = _bare(_fit(clean))
        if image_format == "PNG":
            clean.save(out, format="PNG", optimize=True, **extra)
        else:
            clean.save(out, format="WEBP", quality=85, **extra)
    return out.getvalue(), image_format, clean.width, clean.height


# --- Delete -----------------------------------------------------------------------

def delete(team, item):
    """Remove an image from the library and its file from the server: emails that show it (sent or not)
    show a broken image from then on."""
    if item.team_id != team.id:
        raise MediaProblem("That image is not in this team's library.")
    path = file_path(item)
    item.delete_instance()
    if os.path.exists(path):
        os.remove(path)
