// CSV export and import of accounts: the columns, a streamed export, and an import that
// parses and validates every row before anything is written.
import { Readable } from 'node:stream'
import zlib from 'node:zlib'
import { stringify } from 'csv-stringify'
import { stringify as stringifySync } from 'csv-stringify/sync'
import { CsvError, parse } from 'csv-parse'
import { z } from 'zod'
import { hmac, safeEqual, uuid } from '../../lib/tokens.ts'
import { LICENSED_APPS, parseApps } from './licensed-apps.ts'
import type { ExportedAccount } from './repository.ts'
import { type AccountInput, accountInputSchema, toApiAccount } from './service.ts'

export const MAX_IMPORT_ROWS = 10_000
export const MAX_IMPORT_BYTES = 5 * 1024 * 1024
/** How long the signed preview may be confirmed. */
export const IMPORT_CONFIRM_TTL_MS = 60 * 60_000

type ApiAccount = ReturnType<typeof toApiAccount>
type Cell = string | number | null

export interface CsvColumn {
  key: keyof ApiAccount
  header: string
  /** Read by the import; the others (uuid, utilization, logo, times) are export-only and ignored on import. */
  importable: boolean
  required?: boolean
  format: string
  example: string
  /** Other header spellings accepted on import (besides the header and the field name). */
  aliases?: string[]
  /** The cell, from the account as the export reads it (the API object's field `key`, as text). */
  get: (a: ExportedAccount) => Cell
}

const DAY_MS = 86_400_000

/** A license expiry as a date when it is midnight UTC (as entered), else a full ISO time. */
export function formatExpiry(ms: number | null): string {
  if (ms === null || ms === undefined) return ''
  const time = new Date(ms).toISOString()
  return ms % DAY_MS === 0 ? time.slice(0, 10) : time
}

const iso = (ms: number | null) => (ms ? new Date(ms).toISOString() : '')

/** The account object's fields, in API.md's order, with readable headers. */
export const CSV_COLUMNS: CsvColumn[] = [
  { key: 'uuid', header: 'UUID', importable: false, format: 'Export only (ignored on import).', example: '', get: (a) => a.uuid },
  { key: 'container_name', header: 'Customer Name', importable: true, required: true, format: 'Text, up to 200 characters.', example: 'Example Corp', aliases: ['Container Name', 'Customer'], get: (a) => a.container_name },
  { key: 'custom_name', header: 'Custom Name', importable: true, format: 'Text, up to 200 characters.', example: 'Example (EU)', get: (a) => a.custom_name },
  { key: 'site_id', header: 'Site Identifier', importable: true, format: 'Text, up to 100 characters.', example: 'SITE-0042', aliases: ['Site ID'], get: (a) => a.site_id },
  { key: 'region', header: 'Region', importable: true, format: 'Text, up to 50 characters.', example: 'EU', get: (a) => a.region },
  {
    key: 'licensed_apps', header: 'Licensed Apps', importable: true,
    format: `Codes or names separated by ";": ${LICENSED_APPS.map((a) => `${a.code} (${a.label})`).join(', ')}.`,
    example: 'vm;was', get: (a) => parseApps(a.licensed_apps).join(';'),
  },
  { key: 'licensed_assets', header: 'Licensed Assets', importable: true, format: 'Whole number, 0 or more (default 0).', example: '250', get: (a) => a.licensed_assets },
  { key: 'licensed_assets_limit', header: 'Licensed Assets Limit', importable: true, format: 'Whole number, 0 or more (default 0).', example: '500', get: (a) => a.licensed_assets_limit },
  { key: 'license_utilization', header: 'License Utilization (%)', importable: false, format: 'Export only: assets / limit.', example: '', get: (a) => a.license_utilization },
  {
    key: 'license_expiration_date', header: 'License Expiration Date', importable: true,
    format: 'A date YYYY-MM-DD (UTC), an ISO 8601 time, or epoch milliseconds.', example: '2027-03-31',
    aliases: ['License Expiration', 'Expiration Date'], get: (a) => formatExpiry(a.license_expiration_date),
  },
  { key: 'logo_uuid', header: 'Logo UUID', importable: false, format: 'Export only (assign logos on the Accounts page).', example: '', get: (a) => a.logo_uuid },
  { key: 'notes', header: 'Notes', importable: true, format: 'Text, up to 10,000 characters; line breaks allowed in a quoted cell.', example: 'Renewal handled by Sam', get: (a) => a.notes },
  { key: 'lms_customer_id', header: 'LMS Customer ID', importable: true, format: 'Text, up to 100 characters.', example: 'LMS-1234', get: (a) => a.lms_customer_id },
  { key: 'sso_username', header: 'SSO Username', importable: true, format: 'Text, up to 254 characters.', example: 'mssp-sso@example.com', get: (a) => a.sso_username },
  { key: 'domains', header: 'Domains', importable: true, format: 'Domain names separated by ";".', example: 'example.com;example.org', get: (a) => (a.domains === '[]' ? '' : (JSON.parse(a.domains) as string[]).join(';')) },
  { key: 'instance_url', header: 'Instance URL', importable: true, format: "The customer instance's https:// address.", example: 'https://example.cloud.tenable.com', get: (a) => a.instance_url },
  { key: 'contact_email', header: 'Contact Email', importable: true, format: 'An email address.', example: 'security@example.com', get: (a) => a.contact_email },
  { key: 'created', header: 'Created', importable: false, format: 'Export only (ISO 8601, UTC).', example: '', get: (a) => iso(a.created_at) },
  { key: 'modified', header: 'Modified', importable: false, format: 'Export only (ISO 8601, UTC).', example: '', get: (a) => iso(a.modified_at) },
]

export const IMPORT_COLUMNS = CSV_COLUMNS.filter((c) => c.importable)

// --- Export -------------------------------------------------------------------------

/** Spreadsheet formula injection: a text cell starting with = + - @ tab or CR gets a leading apostrophe. */
export function neutralise(value: Cell): Cell {
  if (typeof value !== 'string') return value
  // The first character's code, not a regular expression: this runs for every cell of an export.
  const first = value.charCodeAt(0)
  return first === 61 || first === 43 || first === 45 || first === 64 || first === 9 || first === 13 ? `'${value}` : value
}

/** The import's inverse: an apostrophe the export added in front of a formula character goes. */
function unneutralise(value: string): string {
  return /^'[=+\-@\t\r]/.test(value) ? value.slice(1) : value
}

export function exportFilename(now = new Date()): string {
  return `accounts-${now.toISOString().slice(0, 10)}.csv`
}

function csvOptions(columns: CsvColumn[]) {
  // A BOM so that Excel reads UTF-8; CRLF as RFC 4180 says. With a record delimiter given,
  // csv-stringify quotes only cells holding that CRLF unless told to quote any CR or LF too:
  // a bare CR left unquoted starts a new row for readers that break lines on CR.
  return { header: true, bom: true, record_delimiter: 'windows' as const, quote_record_delimiter: true, columns: columns.map((c) => ({ key: c.key, header: c.header })) }
}

/**
 * A CSV stream of accounts, pulled from `batches` (iterateAccountBatches) only as fast as the
 * client reads: one batch in memory at a time, written as one chunk.
 */
export function accountsCsvStream(batches: AsyncIterable<ExportedAccount[]>): Readable {
  async function* chunks() {
    let first = true
    for await (const batch of batches) {
      // Arrays in the columns' order: csv-stringify then skips its per-field key lookups.
      const records = batch.map((row) => CSV_COLUMNS.map((c) => neutralise(c.get(row))))
      yield stringifySync(records, { ...csvOptions(CSV_COLUMNS), header: first, bom: first })
      first = false
    }
    if (first) yield stringifySync([], csvOptions(CSV_COLUMNS))
  }
  // An error while reading (the database) destroys the stream, which ends the response.
  return Readable.from(chunks())
}

/** The import template: the importable columns' headers and nothing else. */
export function templateCsv(): Promise<string> {
  return new Promise((resolve, reject) => {
    stringify([], csvOptions(IMPORT_COLUMNS), (err, out) => (err ? reject(err) : resolve(out)))
  })
}

// --- Import -------------------------------------------------------------------------

export interface ImportRowError {
  /** The row as a spreadsheet numbers it: the header is row 1. */
  row: number
  messages: string[]
}

export interface ImportPreview {
  /** A problem with the file as a whole (nothing else is reported then). */
  fileError?: string
  rows: AccountInput[]
  errors: ImportRowError[]
  /** Data rows read (blank rows are skipped). */
  total: number
  /** Known export-only columns present in the file, which the import ignores. */
  ignoredColumns: string[]
}

const normalise = (s: string) => s.toLowerCase().replace(/[^a-z0-9]/g, '')

const HEADER_LOOKUP = new Map<string, CsvColumn>()
for (const c of CSV_COLUMNS) for (const name of [c.header, c.key, ...(c.aliases ?? [])]) HEADER_LOOKUP.set(normalise(name), c)

const APP_LOOKUP = new Map<string, string>()
for (const a of LICENSED_APPS) for (const name of [a.code, a.label]) APP_LOOKUP.set(normalise(name), a.code)

/** UTF-8 (with or without BOM); a file that is not valid UTF-8 is read as Windows-1252 (Excel's "CSV"). */
function decode(buffer: Buffer): string {
  try {
    return new TextDecoder('utf-8', { fatal: true, ignoreBOM: false }).decode(buffer)
  } catch {
    return new TextDecoder('windows-1252').decode(buffer)
  }
}

/** Excel in some locales saves with ";": a header line with semicolons and no commas. */
function detectDelimiter(text: string): string {
  const firstLine = text.slice(0, text.search(/\r?\n|$/))
  return !firstLine.includes(',') && firstLine.includes(';') ? ';' : ','
}

const DATE_ONLY = /^\d{4}-\d{2}-\d{2}$/
const ISO_TIME = /^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,3})?)?(Z|[+-]\d{2}:?\d{2})?$/

function parseDate(value: string): number | null {
  if (/^\d{1,16}$/.test(value)) return Number(value)
  if (DATE_ONLY.test(value)) {
    const ms = Date.parse(`${value}T00:00:00Z`)
    return Number.isNaN(ms) || new Date(ms).toISOString().slice(0, 10) !== value ? null : ms
  }
  if (ISO_TIME.test(value)) {
    // A time without a zone is UTC, as every time in the portal.
    const ms = Date.parse(/(Z|[+-]\d{2}:?\d{2})$/.test(value) ? value.replace(' ', 'T') : `${value.replace(' ', 'T')}Z`)
    return Number.isNaN(ms) ? null : ms
  }
  return null
}

/** One row's cells as accountInputSchema input, or the messages of the cells that cannot be read. */
function rowInput(cells: Map<CsvColumn, string>): { input: Record<string, unknown>; messages: string[] } {
  const input: Record<string, unknown> = {}
  const messages: string[] = []
  for (const [column, raw] of cells) {
    const value = unneutralise(raw)
    if (value.trim() === '') continue
    switch (column.key) {
      case 'licensed_apps': {
        const codes: string[] = []
        for (const name of value.split(/[;,|]/).map((s) => s.trim()).filter(Boolean)) {
          const code = APP_LOOKUP.get(normalise(name))
          if (code) codes.push(code)
          else messages.push(`${column.header}: "${name}" is not a licensed app (use ${LICENSED_APPS.map((a) => a.code).join(', ')} or their names).`)
        }
        input.licensed_apps = [...new Set(codes)]
        break
      }
      case 'domains':
        input.domains = value.split(/[;,\s]+/).filter(Boolean)
        break
      case 'licensed_assets':
      case 'licensed_assets_limit': {
        const digits = value.trim().replace(/[\s,_]/g, '')
        if (/^\d+$/.test(digits)) input[column.key] = Number(digits)
        else messages.push(`${column.header}: "${value.trim()}" is not a whole number.`)
        break
      }
      case 'license_expiration_date': {
        const ms = parseDate(value.trim())
        if (ms === null) messages.push(`${column.header}: "${value.trim()}" is not a date (use YYYY-MM-DD).`)
        else input.license_expiration_date = ms
        break
      }
      default:
        input[column.key] = value
    }
  }
  return { input, messages }
}

function headerOf(key: PropertyKey | undefined): string {
  return CSV_COLUMNS.find((c) => c.key === key)?.header ?? String(key ?? 'Row')
}

/**
 * Reads an uploaded CSV (header row first) and validates every row with accountInputSchema.
 * Writes nothing: the caller shows the preview and imports only on confirmation.
 */
export async function readImport(buffer: Buffer): Promise<ImportPreview> {
  const result: ImportPreview = { rows: [], errors: [], total: 0, ignoredColumns: [] }
  const fail = (fileError: string): ImportPreview => ({ rows: [], errors: [], total: 0, ignoredColumns: [], fileError })
  if (buffer.length > MAX_IMPORT_BYTES) return fail(`The file is larger than ${MAX_IMPORT_BYTES / 1024 / 1024} MB. Split it into smaller files.`)
  const text = decode(buffer)
  if (text.replace(/^\uFEFF/, '').trim() === '') return fail('The file is empty. It needs a header row and one row per account.')

  const parser = parse(text, { bom: true, delimiter: detectDelimiter(text), relax_column_count: true, skip_empty_lines: false, max_record_size: 1_000_000 })
  let columns: Array<CsvColumn | null> | null = null
  let recordIndex = 0
  try {
    for await (const record of parser as AsyncIterable<string[]>) {
      recordIndex += 1
      if (!columns) {
        const unknown: string[] = []
        const seen = new Set<CsvColumn>()
        columns = record.map((cell) => {
          const name = cell.trim()
          if (name === '') return null
          const column = HEADER_LOOKUP.get(normalise(name))
          if (!column) unknown.push(name)
          else if (seen.has(column)) unknown.push(`${name} (a second "${column.header}" column)`)
          else {
            seen.add(column)
            if (!column.importable) result.ignoredColumns.push(column.header)
            return column
          }
          return null
        })
        if (unknown.length) return fail(`The first row must hold column names. Not recognised: ${unknown.map((u) => `"${u}"`).join(', ')}. Download the template for the columns.`)
        if (!seen.has(CSV_COLUMNS.find((c) => c.required)!)) return fail('The file needs a "Customer Name" column. Download the template for the columns.')
        continue
      }
      if (record.every((cell) => cell.trim() === '')) continue
      result.total += 1
      if (result.total > MAX_IMPORT_ROWS) return fail(`The file has more than ${MAX_IMPORT_ROWS.toLocaleString('en-US')} rows. Split it into smaller files.`)
      const row = recordIndex
      const messages: string[] = []
      const extra = record.slice(columns.length).filter((cell) => cell.trim() !== '')
      if (extra.length) messages.push(`The row has ${record.length} cells; the header has ${columns.length}.`)
      const cells = new Map<CsvColumn, string>()
      columns.forEach((column, i) => {
        if (column?.importable) cells.set(column, record[i] ?? '')
      })
      const { input, messages: cellMessages } = rowInput(cells)
      messages.push(...cellMessages)
      const parsed = accountInputSchema.safeParse(input)
      if (!parsed.success) {
        const bad = new Set(cellMessages.map((m) => m.split(':')[0]))
        for (const issue of parsed.error.issues) {
          const header = headerOf(issue.path[0])
          if (bad.has(header)) continue
          const empty = issue.code === 'invalid_type' && input[String(issue.path[0])] === undefined
          messages.push(empty ? `${header}: the cell is empty; it is required.` : `${header}: ${issue.message}`)
        }
      }
      if (messages.length) result.errors.push({ row, messages })
      else if (parsed.success) result.rows.push(parsed.data)
    }
  } catch (err) {
    if (err instanceof CsvError) {
      const where = (err as CsvError & { lines?: number }).lines
      return fail(`The file is not valid CSV${where ? ` (near line ${where})` : ''}: ${err.message.replace(/^Invalid [^:]*: /, '')}`)
    }
    throw err
  }
  if (!columns) return fail('The file is empty. It needs a header row and one row per account.')
  if (result.total === 0) return { ...result, fileError: 'The file has a header row but no accounts.' }
  return result
}

// --- The signed confirmation --------------------------------------------------------

/**
 * The preview's validated rows travel back in a hidden field, signed so that they cannot
 * be changed in between: deflated JSON (base64url) and an HMAC-SHA256 of it keyed with the
 * portal's session key, bound to the Administrator and valid for an hour. The import's id
 * inside lets the import refuse a second confirmation of the same preview.
 */
export interface SignedImport {
  payload: string
  signature: string
}

const payloadSchema = z.object({
  v: z.literal(1),
  id: z.uuid(),
  uid: z.number().int(),
  iat: z.number().int(),
  rows: z.array(z.unknown()).min(1).max(MAX_IMPORT_ROWS),
})

function signatureOf(key: Buffer, payload: string): string {
  return hmac(key, `accounts-import:v1:${payload}`)
}

export function signImport(key: Buffer, userId: number, rows: AccountInput[], now = Date.now()): SignedImport {
  const json = JSON.stringify({ v: 1, id: uuid(), uid: userId, iat: now, rows })
  const payload = zlib.deflateRawSync(json).toString('base64url')
  return { payload, signature: signatureOf(key, payload) }
}

export type VerifiedImport = { ok: true; id: string; issuedAt: number; rows: AccountInput[] } | { ok: false; reason: string }

export function verifyImport(key: Buffer, userId: number, signed: Partial<SignedImport>, now = Date.now()): VerifiedImport {
  const refused = { ok: false as const, reason: 'This import could not be verified: it was changed after the preview. Upload the file again.' }
  const { payload, signature } = signed
  if (typeof payload !== 'string' || typeof signature !== 'string' || !safeEqual(signature, signatureOf(key, payload))) return refused
  let body: z.infer<typeof payloadSchema>
  try {
    body = payloadSchema.parse(JSON.parse(zlib.inflateRawSync(Buffer.from(payload, 'base64url'), { maxOutputLength: 64 * 1024 * 1024 }).toString('utf8')))
  } catch {
    return refused
  }
  if (body.uid !== userId) return refused
  if (now - body.iat > IMPORT_CONFIRM_TTL_MS || body.iat - now > 60_000) return { ok: false, reason: 'This preview has expired. Upload the file again.' }
  // Signed rows were validated already; validating again costs little and keeps the write path honest.
  const rows: AccountInput[] = []
  for (const row of body.rows) {
    const parsed = accountInputSchema.safeParse(row)
    if (!parsed.success) return refused
    rows.push(parsed.data)
  }
  return { ok: true, id: body.id, issuedAt: body.iat, rows }
}
