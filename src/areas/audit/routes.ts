import { Readable, pipeline } from 'node:stream'
import type { FastifyPluginAsync, FastifyRequest } from 'fastify'
import { stringify } from 'csv-stringify'
import { z } from 'zod'
import { neutralise } from '../accounts/csv.ts'
import { queryString } from '../../lib/format.ts'
import { actorOf, isHtmx } from '../../plugins/session.ts'
import * as repo from './repository.ts'
import { audit, findEventsPage, iterateEvents, toAuditQuery, utcDay } from './service.ts'
import { actionLabel, describeEvent, fieldPairs, fieldsText, parseFields } from './actions.ts'

// The Audit Log page (Administrator): every recorded event, newest first, filtered by
// actor, action, target, outcome and a UTC date range, 50 a page by keyset paging, and
// its CSV export. The helpers that put an event into words serve the API as well.

export const PAGE_SIZE = 50
/** The result count stops here ("More than 10,000 events"): counting millions reads millions. */
export const COUNT_CAP = 10_000
export const PAGE_URL = '/audit-log'
export const EXPORT_URL = '/audit-log/export.csv'

// --- Events in words: the registry of actions (actions.ts) --------------------------

export { actionLabel, crudOf, describeEvent, fieldPairs, fieldsText, parseFields, type Crud, type FieldValue } from './actions.ts'

/** `2024-05-01 13:45:07` (UTC, to the second). */
export function formatTime(ms: number): string {
  return new Date(ms).toISOString().slice(0, 19).replace('T', ' ')
}

// --- The page's filters -------------------------------------------------------------

const CURSOR = /^(\d{1,15})_([A-Za-z0-9-]{1,64})$/

const dateParam = z.string().refine((v) => utcDay(v) !== null).optional().catch(undefined)
const cursorParam = z
  .string()
  .regex(CURSOR)
  .transform((v): repo.AuditCursor => {
    const [, ms, id] = CURSOR.exec(v)!
    return { created_at: Number(ms), id: id! }
  })
  .optional()
  .catch(undefined)

/** Lenient, as a URL typed or kept from an older version may hold anything: bad values are ignored. */
export const pageQuerySchema = z.object({
  actor: z.string().trim().max(254).catch(''),
  action: z.string().trim().max(100).catch(''),
  target: z.string().trim().max(200).catch(''),
  outcome: z.enum(['success', 'failure']).optional().catch(undefined),
  from: dateParam,
  to: dateParam,
  before: cursorParam,
  after: cursorParam,
})
export type PageQuery = z.infer<typeof pageQuerySchema>

/** The filters as query parameters (links keep them; empty ones are left out). */
function filterParams(q: PageQuery) {
  return { actor: q.actor, action: q.action, target: q.target, outcome: q.outcome, from: q.from, to: q.to }
}

const cursorOf = (e: { created_at: number; id: string }) => `${e.created_at}_${e.id}`

function viewEvent(e: repo.AuditRow) {
  const fields = parseFields(e.fields)
  return {
    id: e.id,
    iso: new Date(e.created_at).toISOString(),
    time: formatTime(e.created_at),
    actor: e.actor_name,
    assisting: e.assisting_name,
    action: e.action,
    label: actionLabel(e.action),
    failed: e.outcome === 'failure',
    target: e.target_name ?? e.target_id,
    targetType: e.target_type ? e.target_type.replace(/_/g, ' ') : null,
    ip: e.ip,
    fields: fieldPairs(fields),
    description: describeEvent(e),
  }
}

// --- CSV export ---------------------------------------------------------------------

type Cell = string | number | null
export const CSV_COLUMNS: Array<{ header: string; get: (e: repo.AuditRow) => Cell }> = [
  { header: 'Time (UTC)', get: (e) => new Date(e.created_at).toISOString() },
  { header: 'Actor', get: (e) => e.actor_name },
  { header: 'Assisting Administrator', get: (e) => e.assisting_name },
  { header: 'Action', get: (e) => e.action },
  { header: 'Outcome', get: (e) => e.outcome },
  { header: 'Target Type', get: (e) => e.target_type },
  { header: 'Target ID', get: (e) => e.target_id },
  { header: 'Target Name', get: (e) => e.target_name },
  { header: 'IP Address', get: (e) => e.ip },
  { header: 'Fields', get: (e) => fieldsText(parseFields(e.fields)) },
  { header: 'Description', get: (e) => describeEvent(e) },
  { header: 'Event ID', get: (e) => e.id },
]

export function exportFilename(now = new Date()): string {
  return `audit-log-${now.toISOString().slice(0, 10)}.csv`
}

/** The CSV, pulled from the rows only as fast as the client reads (one batch in memory). */
function auditCsvStream(first: IteratorResult<repo.AuditRow>, rest: AsyncGenerator<repo.AuditRow>): NodeJS.ReadableStream {
  async function* records() {
    if (first.done) return
    const toRecord = (e: repo.AuditRow) => CSV_COLUMNS.map((c) => neutralise(c.get(e)))
    yield toRecord(first.value)
    for await (const e of rest) yield toRecord(e)
  }
  // A BOM so that Excel reads UTF-8; CRLF as RFC 4180 says (as the accounts export).
  const stringifier = stringify({ header: true, bom: true, record_delimiter: 'windows', columns: CSV_COLUMNS.map((c) => c.header) })
  // An error while reading (the database) destroys the stringifier, which ends the response.
  pipeline(Readable.from(records()), stringifier, () => {})
  return stringifier
}

// --- Routes -------------------------------------------------------------------------

const routes: FastifyPluginAsync = async (app) => {
  async function results(q: PageQuery) {
    const { rows, hasNewer, hasOlder, paged, total, filtered } = await findEventsPage(app.db, toAuditQuery(q), { pageSize: PAGE_SIZE, countCap: COUNT_CAP, before: q.before, after: q.after })
    const state = filterParams(q)
    const qs = (extra: Record<string, string>) => `${PAGE_URL}${queryString({ ...state, ...extra })}`
    return {
      q,
      state,
      events: rows.map(viewEvent),
      total,
      countCapped: total > COUNT_CAP,
      countCap: COUNT_CAP,
      filtered,
      // Beyond the newest page: a way back to it.
      newestUrl: hasNewer || (q.before !== undefined && rows.length === 0) ? qs({}) : null,
      newerUrl: hasNewer && rows.length ? qs({ after: cursorOf(rows[0]!) }) : null,
      olderUrl: hasOlder ? qs({ before: cursorOf(rows.at(-1)!) }) : null,
      exportUrl: `${EXPORT_URL}${queryString(state)}`,
      // This page's own address: the filters in use (not the form's empty fields) and its cursor.
      selfUrl: qs(!paged ? {} : q.before ? { before: cursorOf(q.before) } : { after: cursorOf(q.after!) }),
    }
  }

  /** The known actions found in the log, by their readable names (the Action filter's choices). */
  async function actionChoices(selected: string) {
    const actions = await repo.distinctAuditActions(app.db)
    if (selected && !actions.includes(selected)) actions.push(selected)
    return actions.map((a) => ({ value: a, label: actionLabel(a) })).sort((a, b) => a.label.localeCompare(b.label, 'en'))
  }

  const wantsFragment = (request: FastifyRequest) => isHtmx(request) && request.headers['hx-boosted'] !== 'true'

  app.get(PAGE_URL, { config: { access: 'administrator' } }, async (request, reply) => {
    const q = pageQuerySchema.parse(request.query ?? {})
    const fragment = wantsFragment(request)
    const data = await results(q)
    // The address htmx shows.
    if (fragment) reply.header('HX-Push-Url', data.selfUrl)
    const actions = fragment ? [] : await actionChoices(q.action)
    return reply.render('audit/index', { title: 'Audit Log', ...data, actions, oob: fragment }, { fragment: 'audit/_results' })
  })

  app.get(EXPORT_URL, { config: { access: 'administrator' } }, async (request, reply) => {
    // The page's query string: the export holds every event its filters match (all pages).
    const q = pageQuerySchema.parse(request.query ?? {})
    const rows = await iterateEvents(app.db, toAuditQuery(q))
    // The first batch is read before the response starts (a failure is still an error page),
    // and before the export is itself recorded, so that it does not list itself.
    const first = await rows.next()
    const filters = Object.fromEntries(Object.entries(filterParams(q)).filter((e): e is [string, string] => Boolean(e[1])))
    await audit(app.db, actorOf(request), { action: 'audit.export', fields: filters })
    return reply
      .header('Content-Type', 'text/csv; charset=utf-8')
      .header('Content-Disposition', `attachment; filename="${exportFilename()}"`)
      .header('Cache-Control', 'no-store')
      .send(auditCsvStream(first, rows))
  })
}

export default routes
