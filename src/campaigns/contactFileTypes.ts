/** The media type of an .xlsx workbook (Office Open XML spreadsheet), as uploads declare it. */
export const XLSX_CONTENT_TYPE = 'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet';
