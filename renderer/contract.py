"""The layout contract's names: what a layout folder holds and what its pages must have.

layouts/README.md describes the contract; this module is the one place the code names it.
"""

from __future__ import annotations

DOSSIER_TEMPLATE = "dossier.html.j2"  # one record on one page; the only file every layout has
LAYOUT_ENTRY_POINTS = "dossier.layouts"  # other packages' layouts: name = "their.package"
SETTINGS_FILE = "layout.toml"  # optional: description, page_text
MAIL_TEMPLATES = {"text": "mail.txt.j2", "html": "mail.html.j2"}  # optional
# the compendium's own pages: each layout that binds a compendium has these
MATTER, COVER, CONTENTS, INDEX, BLANK = (
    "matter.html.j2", "cover.html.j2", "contents.html.j2", "index.html.j2", "blank.html.j2"
)  # fmt: skip
MATTER_TEMPLATES = (MATTER, COVER, CONTENTS, INDEX, BLANK, "compendium.css")
# a distribution copy's stamp: one page of the paper size, its text in the zone the layout keeps
# free on every page, dossier and compendium alike (renderer/copies.py)
STAMP_TEMPLATE = "stamp.html.j2"
SHEET_ID = "sheet"  # the element of a dossier whose height must fit the page
# config's paper setting -> the CSS page size a template writes, and that size in CSS lengths
PAPER_SIZES = {"a4": "A4", "letter": "letter"}
PAPER_LENGTHS = {"A4": ("210mm", "297mm"), "letter": ("8.5in", "11in")}
