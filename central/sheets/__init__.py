"""Printable exam booklets: one per student, each page carrying its own patch of the dot lattice.

`classink sheets print` (cli.py) reads a template and a class list, and writes the PDF, the
manifest that maps printed page addresses back to students (protocol_specs/lattice.md), and
optionally a PNG preview.
"""

# At 600 dpi a 0.3 mm pitch is 7 pixels and a dot's 0.05 mm displacement about one: zoomed in,
# each dot and the side it leans to can be seen. An A4 page is 4961 × 7016 pixels.
PREVIEW_DPI = 600


class SheetsError(ValueError):
    """Input that cannot be printed; the message says what is wrong and what to do."""
