"""Reading uploaded workbooks safely and writing workbooks that cannot run formulas."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterable, Iterator
from typing import IO, Any

from django.utils.translation import gettext as _
from openpyxl import Workbook, load_workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Font
from openpyxl.utils.exceptions import InvalidFileException

XLSX_CONTENT_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


class WorkbookError(ValueError):
    """An uploaded file that cannot be read as a workbook; the message is for the user."""


def neutralize(value: Any) -> Any:
    """Text that a spreadsheet would read as a formula gets a leading apostrophe."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def read_rows(
    upload: IO[bytes], *, size: int, max_bytes: int, max_rows: int
) -> Iterator[tuple[int, tuple[Any, ...]]]:
    """Yield (row number, cell values) of the first sheet of an uploaded .xlsx.

    Raises WorkbookError, with a message for the user, for a file that is too large,
    is not an .xlsx workbook, is damaged, or has more than ``max_rows`` data rows.
    """
    if size == 0:
        raise WorkbookError(_("文件是空的，请选择填好的 Excel 文件。"))
    if size > max_bytes:
        raise WorkbookError(
            _("文件太大（%(size)s KB），上限为 %(limit)s KB。")
            % {"size": size // 1024, "limit": max_bytes // 1024}
        )
    data = upload.read(max_bytes + 1)
    if not data.startswith(b"PK\x03\x04"):
        raise WorkbookError(_("这不是 Excel 工作簿（.xlsx）文件，请用模板填写后上传。"))
    try:
        workbook = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except (
        InvalidFileException,
        zipfile.BadZipFile,
        LookupError,
        OSError,
        ValueError,
        SyntaxError,
    ) as error:
        # SyntaxError: broken XML inside the zip (xml.etree's ParseError is one).
        raise WorkbookError(_("无法读取该 Excel 文件，文件可能已损坏。")) from error
    try:
        if not workbook.worksheets:
            raise WorkbookError(_("无法读取该 Excel 文件，文件可能已损坏。"))
        sheet = workbook.worksheets[0]
        for number, values in enumerate(sheet.iter_rows(values_only=True), start=1):
            if number > max_rows + 1:
                raise WorkbookError(
                    _("文件行数超过上限 %(limit)s 行，请分批导入。") % {"limit": max_rows}
                )
            yield number, tuple(values)
    except WorkbookError:
        raise
    except (zipfile.BadZipFile, LookupError, OSError, ValueError, SyntaxError) as error:
        raise WorkbookError(_("无法读取该 Excel 文件，文件可能已损坏。")) from error
    finally:
        workbook.close()


def write_workbook(
    sheets: Iterable[tuple[str, list[str], Iterable[Iterable[Any]]]], *, widths: dict | None = None
) -> bytes:
    """A streamed (write-only) workbook: one sheet per (title, headers, rows).

    Every text cell is neutralized; the header row is bold and frozen.
    """
    workbook = Workbook(write_only=True)
    for title, headers, rows in sheets:
        sheet = workbook.create_sheet(title=title)
        sheet.freeze_panes = "A2"
        for index, header in enumerate(headers):
            letter = _column_letter(index)
            sheet.column_dimensions[letter].width = (widths or {}).get(header, 14)
        header_cells = []
        for header in headers:
            cell = WriteOnlyCell(sheet, value=neutralize(header))
            cell.font = Font(bold=True)
            header_cells.append(cell)
        sheet.append(header_cells)
        for row in rows:
            sheet.append([neutralize(value) for value in row])
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def _column_letter(index: int) -> str:
    from openpyxl.utils import get_column_letter

    return get_column_letter(index + 1)
