"""Image parts of OpenAI messages: data: URLs taken apart, and a media type for a plain URL."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from ..errors import InvalidRequest

# By file extension, for providers that want a media type next to a URL (Gemini fileData).
_BY_EXTENSION = {
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "png": "image/png",
    "gif": "image/gif",
    "webp": "image/webp",
    "heic": "image/heic",
    "heif": "image/heif",
    "bmp": "image/bmp",
    "tif": "image/tiff",
    "tiff": "image/tiff",
    "svg": "image/svg+xml",
    "pdf": "application/pdf",
}

# The magic numbers of the formats providers take, for data: URLs that lie or say nothing useful.
_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"%PDF-", "application/pdf"),
)


@dataclass(frozen=True, slots=True)
class Image:
    url: str | None  # set for http(s) images
    media_type: str | None  # from the data: URL (checked against its bytes) or guessed from the extension
    data: str | None  # base64, set for data: URLs


def image_part(part: dict[str, Any], *, param: str) -> Image:
    """The image of an OpenAI `image_url` content part."""
    spec = part.get("image_url")
    url = spec.get("url") if isinstance(spec, dict) else spec
    if not isinstance(url, str) or not url:
        raise InvalidRequest(f"{param}.image_url.url must be a URL or a data: URL", param=f"{param}.image_url.url")
    if url.startswith("data:"):
        media_type, data = parse_data_url(url, param=f"{param}.image_url.url")
        return Image(None, media_type, data)
    if url.startswith(("https://", "http://")):
        return Image(url, guess_media_type(url), None)
    raise InvalidRequest(f"{param}.image_url.url must be an http(s) URL or a data: URL", param=f"{param}.image_url.url")


def parse_data_url(url: str, *, param: str) -> tuple[str, str]:
    """(media type, base64 data) of `data:<type>;base64,<data>`; the type is corrected from the
    bytes when it is missing or generic."""
    head, sep, data = url[5:].partition(",")
    fields = head.split(";")
    if not sep or "base64" not in fields[1:]:
        raise InvalidRequest("image data: URLs must be base64 encoded (data:<type>;base64,...)", param=param)
    media_type = fields[0].strip().lower()
    data = data.strip()
    try:
        head_bytes = base64.b64decode(data[:24] + "=" * (-len(data[:24]) % 4), validate=False)
    except (binascii.Error, ValueError):
        raise InvalidRequest("image data: URL does not hold valid base64", param=param) from None
    sniffed = next((kind for magic, kind in _MAGIC if head_bytes.startswith(magic)), None)
    if sniffed is None and head_bytes[:4] == b"RIFF" and head_bytes[8:12] == b"WEBP":
        sniffed = "image/webp"
    generic = media_type in ("", "image/*", "application/octet-stream", "image/jpg")
    if sniffed and (generic or (media_type.startswith("image/") and media_type != sniffed)):
        media_type = sniffed
    if not media_type:
        raise InvalidRequest("image data: URL has no media type and its format is not recognised", param=param)
    return media_type, data


def guess_media_type(url: str) -> str | None:
    path = urlsplit(url).path
    ext = path.rsplit(".", 1)[-1].lower() if "." in path.rsplit("/", 1)[-1] else ""
    return _BY_EXTENSION.get(ext)
