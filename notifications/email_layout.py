"""The simple email editor: a heading, paragraphs, a button and a sign-off, in the product's email layout.

Staff who do not write HTML fill in those parts; this module turns them into the two bodies every message
template has (plain text and HTML), so dispatch, previews and the outbox see an ordinary template. The
parts are template source: variables and tags (``{{ contact_name }}``, ``{% if plan %}``) work as in the
raw editor, and everything is rendered by the same sandbox (``notifications.rendering``).

In the HTML body, the text the author typed is HTML-escaped (``<`` shows as ``<``, it never becomes
markup) while template tags are kept as they are; variable values are escaped at render time, as in every
HTML template. So the simple editor cannot produce markup other than the layout's.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from typing import Any

from django.template.base import tag_re

DEFAULT_BUTTON_URL = "{{ portal_url }}"
DEFAULT_FOOTER = "Thanks,\nThe {{ product_name }} team"
_BLANK_LINES = re.compile(r"\n[ \t]*\n+")

_BUTTON_STYLE = (
    "background:#1a56db;color:#ffffff;padding:12px 20px;border-radius:6px;text-decoration:none;"
    "font-weight:600;display:inline-block"
)
_BODY_STYLE = (
    "max-width:560px;margin:0 auto;padding:32px 24px;background:#ffffff;"
    "font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;font-size:15px;line-height:1.5;color:#1f2328"
)


def escape_text(source: str) -> str:
    """HTML-escape the literal text of template source, keeping its ``{{ }}``, ``{% %}`` and ``{# #}``
    tags intact; line breaks become ``<br>``."""
    pieces = tag_re.split(source)
    out = []
    for index, piece in enumerate(pieces):
        # re.split with one capturing group alternates: text, tag, text, tag…
        out.append(piece if index % 2 else html.escape(piece, quote=True).replace("\n", "<br>"))
    return "".join(out)


def split_paragraphs(text: str) -> tuple[str, ...]:
    """Paragraphs as typed in one box: separated by an empty line; single line breaks are kept."""
    normalised = text.replace("\r\n", "\n").replace("\r", "\n").strip()
    return tuple(p.strip() for p in _BLANK_LINES.split(normalised) if p.strip())


@dataclass(frozen=True)
class EmailBlocks:
    heading: str = ""
    paragraphs: tuple[str, ...] = ()
    button_label: str = ""
    button_url: str = DEFAULT_BUTTON_URL
    footer: str = DEFAULT_FOOTER

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> EmailBlocks:
        data = data or {}
        paragraphs = data.get("paragraphs") or ()
        return cls(
            heading=str(data.get("heading", "")).strip(),
            paragraphs=tuple(str(p) for p in paragraphs) if isinstance(paragraphs, list | tuple) else (),
            button_label=str(data.get("button_label", "")).strip(),
            button_url=str(data.get("button_url", DEFAULT_BUTTON_URL)).strip(),
            footer=str(data.get("footer", DEFAULT_FOOTER)).strip(),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "heading": self.heading,
            "paragraphs": list(self.paragraphs),
            "button_label": self.button_label,
            "button_url": self.button_url,
            "footer": self.footer,
        }

    @property
    def has_button(self) -> bool:
        return bool(self.button_label and self.button_url)

    def body_text(self) -> str:
        parts = [self.heading] if self.heading else []
        parts += list(self.paragraphs)
        if self.has_button:
            parts.append(f"{self.button_label}:\n{self.button_url}")
        if self.footer:
            parts.append(self.footer)
        return "\n\n".join(parts) + "\n"

    def body_html(self, *, lang: str = "en") -> str:
        lines = []
        if self.heading:
            lines.append(
                f'      <h1 style="margin:0 0 16px;font-size:22px;line-height:1.3">{escape_text(self.heading)}</h1>'
            )
        lines += [f'      <p style="margin:0 0 16px">{escape_text(p)}</p>' for p in self.paragraphs]
        if self.has_button:
            link = escape_text(self.button_url)
            lines.append(
                f'      <p style="margin:24px 0"><a href="{link}" style="{_BUTTON_STYLE}">'
                f"{escape_text(self.button_label)}</a></p>"
            )
            lines.append(
                '      <p style="margin:0 0 16px;font-size:13px;color:#57606a">If the button does not work, '
                f'copy this link into your browser:<br><a href="{link}" style="color:#1a56db">{link}</a></p>'
            )
        if self.footer:
            lines.append(f'      <p style="margin:24px 0 0">{escape_text(self.footer)}</p>')
        return (
            "<!doctype html>\n"
            f'<html lang="{html.escape(lang or "en", quote=True)}">\n'
            '  <body style="margin:0;padding:0;background:#f6f8fa">\n'
            f'    <div style="{_BODY_STYLE}">\n' + "\n".join(lines) + "\n    </div>\n  </body>\n</html>\n"
        )
