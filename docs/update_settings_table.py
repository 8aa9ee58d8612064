"""Rewrite the settings table of docs/configuration.md from impasto.settings."""

import re
from pathlib import Path

from impasto.settings import markdown_table

BLOCK = re.compile(r"(<!-- settings-table:[^\n]*-->\n).*?(\n<!-- /settings-table -->)", re.S)

doc = Path("docs/configuration.md")
doc.write_text(BLOCK.sub(lambda m: m.group(1) + markdown_table() + m.group(2), doc.read_text()))
