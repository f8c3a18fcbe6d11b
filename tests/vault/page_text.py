"""What a person sees of a back-office page: its visible text nodes and its main menu's links.

Only the standard library's HTML parser: no browser, so a test can walk every page of
every role through Django's test client.
"""

from __future__ import annotations

from html.parser import HTMLParser

# Elements whose content is never shown as text.
_HIDDEN = {"script", "style", "template"}
# Attributes a screen reader or a browser shows as text.
_SHOWN_ATTRIBUTES = ("aria-label", "placeholder", "title", "alt")


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.texts: list[str] = []
        self.menu: list[str] = []
        self._hidden = 0
        self._in_menu = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag in _HIDDEN:
            self._hidden += 1
        if tag == "nav" and a.get("id") == "menu":
            self._in_menu = True
        if self._in_menu and tag == "a" and a.get("href"):
            self.menu.append(str(a["href"]))
        for name in _SHOWN_ATTRIBUTES:
            if a.get(name):
                self.texts.append(str(a[name]).strip())
        if tag == "input" and a.get("type") in ("submit", "button") and a.get("value"):
            self.texts.append(str(a["value"]).strip())

    def handle_endtag(self, tag: str) -> None:
        if tag in _HIDDEN:
            self._hidden -= 1
        if tag == "nav":
            self._in_menu = False

    def handle_data(self, data: str) -> None:
        if not self._hidden and data.strip():
            self.texts.append(" ".join(data.split()))


def visible_texts(html: str) -> list[str]:
    """Every text node a person sees (and the labels read out), whitespace collapsed."""
    page = _Page()
    page.feed(html)
    return page.texts


def menu_links(html: str) -> list[str]:
    """The hrefs of the main menu (`<nav id="menu">` in the header)."""
    page = _Page()
    page.feed(html)
    return page.menu
