"""A PNG of one printed page, rendered from the PDF itself, for checking a run by eye."""

from __future__ import annotations

from pathlib import Path

import pypdfium2 as pdfium

from central.sheets import PREVIEW_DPI, SheetsError


def render_preview(
    pdf: Path, page_number: int, png: Path, dpi: int = PREVIEW_DPI
) -> tuple[int, int]:
    """Render page `page_number` (1-based) of `pdf` to `png`; returns its size in pixels."""
    document = pdfium.PdfDocument(pdf)
    try:
        if not 1 <= page_number <= len(document):
            raise SheetsError(
                f"--preview-page {page_number} is not a page of {pdf}, which has "
                f"{len(document)} pages"
            )
        image = document[page_number - 1].render(scale=dpi / 72).to_pil()
    finally:
        document.close()
    try:
        image.save(png, dpi=(dpi, dpi))
    except (OSError, ValueError) as error:
        raise SheetsError(f"cannot write the preview {png}: {error}") from error
    return image.size
