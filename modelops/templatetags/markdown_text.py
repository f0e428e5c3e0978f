"""`{{ text|markdown }}`: Markdown (CommonMark with tables) as HTML, for files shipped with a model
such as its MODEL_CARD.md. Raw HTML in the text is escaped, never passed through, and links with
unsafe schemes (javascript:, vbscript:, data: other than images) are dropped by markdown-it's link check."""

from django import template
from django.utils.safestring import mark_safe
from markdown_it import MarkdownIt

register = template.Library()

_renderer = MarkdownIt("commonmark", {"html": False}).enable("table")


@register.filter
def markdown(text):
    return mark_safe(_renderer.render(text or ""))  # noqa: S308 - html=False: the text cannot carry markup
