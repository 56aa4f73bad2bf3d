import { Readable, pipeline } from 'node:stream'
import type { FastifyPluginAsync, FastifyRequest } from 'fastify'
import { stringify } from 'csv-stringify'
import { z } from 'zod'
import { neutralise } from '../accounts/csv.ts'
import { queryString } from '../../lib/format.ts'
import { isHtmx } from '../../plugins/session.ts'
import * as repo from './repository.ts'
import { audit } from './service.ts'

// The Audit Log page (Administrator): every recorded event, newest first, filtered by
// actor, action, target, outcome and a UTC date range, 50 a page by keyset paging, and
// its CSV export. The helpers that put an event into words serve the API as well.

export const PAGE_SIZE = 50
/** The result count stops here ("More than 10,000 events"): counting millions reads millions. */
export const COUNT_CAP = 10_000
export const PAGE_URL = '/audit-log'
export const EXPORT_URL = '/audit-log/export.csv'
const DAY = 86_400_000

// --- Events in words ---------------------------------------------------------------

/** Readable names of the actions the portal records; others are derived from their code. */
export const ACTION_LABELS: Record<string, string> = {
  'auth.sign_in': 'Sign in',
  'auth.sign_out': 'Sign out',
  'auth.lockout': 'Locked out',
  'auth.password_accepted': 'Password accepted, second factor due',
  'auth.code_resent': 'Verification code resent',
  'auth.password_reset_requested': 'Password reset requested',
  'auth.password_reset': 'Password reset',
  'setup.first_administrator': 'First Administrator created',
  'account.create': 'Account created',
  'account.update': 'Account updated',
  'account.assign_logo': 'Logo assigned to accounts',
  'account.import': 'Accounts imported',
  'user.create': 'User created',
  'user.update': 'User updated',
  'user.enable': 'User enabled',
  'user.disable': 'User disabled',
  'user.unlock': 'User unlocked',
  'user.delete': 'User deleted',
  'user.assign_accounts': 'Accounts assigned to user',
  'user.assist_start': 'Assist started',
  'user.assist_stop': 'Assist ended',
  'user.two_factor_reset': 'Two-factor authentication reset',
  'user.password_change': 'Password changed',
  'user.profile_update': 'Profile updated',
  'user.two_factor_enable': 'Two-factor authentication enabled',
  'user.two_factor_disable': 'Two-factor authentication disabled',
  'user.two_factor_backup_email': 'Backup e-mail codes changed',
  'user.recovery_codes_regenerate': 'Recovery codes regenerated',
  'api_keys.generate': 'API keys generated',
  'logo.create': 'Logo added',
  'logo.update': 'Logo edited',
  'logo.delete': 'Logo deleted',
  'settings.require_2fa': 'Two-factor requirement changed',
  'settings.domain_add': 'Approved domain added',
  'settings.domain_remove': 'Approved domain removed',
  'settings.resource_links_reset': 'Resource links reset',
  'audit.export': 'Audit log exported',
}

export function actionLabel(action: string): string {
  const known = ACTION_LABELS[action]
  if (known) return known
  // area.verb_object → "Area: verb object"
  const [area, ...rest] = action.split('.')
  const words = (rest.join(' ') || area!).replace(/[_-]+/g, ' ').trim()
  const text = rest.length ? `${area!.replace(/[_-]+/g, ' ')}: ${words}` : words
  return text.charAt(0).toUpperCase() + text.slice(1)
}

export type Crud = 'c' | 'r' | 'u' | 'd'
const CRUD: Record<string, Crud> = {
  'auth.sign_in': 'r',
  'auth.sign_out': 'r',
  'auth.password_accepted': 'r',
  'auth.code_resent': 'r',
  'auth.lockout': 'u',
  'auth.password_reset_requested': 'c',
  'auth.password_reset': 'u',
  'setup.first_administrator': 'c',
  'api_keys.generate': 'c',
  'user.assist_start': 'r',
  'user.assist_stop': 'r',
  'audit.export': 'r',
}

/** Tenable's crud letter: create, read, update or delete (sign-ins read). */
export function crudOf(action: string): Crud {
  const known = CRUD[action]
  if (known) return known
  const verb = action.slice(action.lastIndexOf('.') + 1)
  if (/^(create|add|import|generate)|_(add|create)$/.test(verb)) return 'c'
  if (/^(delete|remove)|_(remove|delete)$/.test(verb)) return 'd'
  if (/^(view|read|list|export|sign_in|login|logout)/.test(verb)) return 'r'
  return 'u'
}

export type FieldValue = string | number | boolean | null

/** The event's stored fields (a JSON object); anything else reads as no fields. */
export function parseFields(json: string | null | undefined): Record<string, FieldValue> {
  try {
    const value = JSON.parse(json ?? '{}') as unknown
    if (!value || typeof value !== 'object' || Array.isArray(value)) return {}
    const out: Record<string, FieldValue> = {}
    for (const [k, v] of Object.entries(value)) out[k] = v === null || ['string', 'number', 'boolean'].includes(typeof v) ? (v as FieldValue) : JSON.stringify(v)
    return out
  } catch {
    return {}
  }
}

/** Each field as [key, value] for `key=value`, a value with spaces (or empty) in quotes. */
export function fieldPairs(fields: Record<string, FieldValue>): Array<[string, string]> {
  return Object.entries(fields).map(([k, v]) => {
    const s = v === null ? 'null' : String(v)
    return [k, s === '' || /[\s"=]/.test(s) ? JSON.stringify(s) : s]
  })
}

/** `key=value key="two words"`: compact, and unambiguous where a value has spaces. */
export function fieldsText(fields: Record<string, FieldValue>): string {
  return fieldPairs(fields)
    .map(([k, v]) => `${k}=${v}`)
    .join(' ')
}

type Describable = Pick<repo.AuditRow, 'action' | 'outcome' | 'actor_name' | 'assisting_name' | 'target_type' | 'target_id' | 'target_name' | 'fields'>

const plural = (n: unknown, one: string, many = `${one}s`) => `${String(n ?? 0)} ${Number(n) === 1 ? one : many}`

interface Sentence {
  actor: string
  target: string
  /** The actor acted on themself (or on nothing). */
  self: boolean
  failed: boolean
  reason: string
  f: Record<string, FieldValue>
  e: Describable
}

/** Sentences by action; those that say nothing of failure get "It failed." added. */
const SENTENCES: Record<string, { say: (s: Sentence) => string; failures?: true }> = {
  'auth.sign_in': {
    failures: true,
    say: ({ actor, target, failed, reason, f, e }) =>
      failed ? `Sign-in failed for ${target || String(f.username ?? e.actor_name ?? 'an unknown user')}${reason}.` : `${actor} signed in${f.method ? ` (${String(f.method)})` : ''}.`,
  },
  'auth.sign_out': { say: ({ actor }) => `${actor} signed out.` },
  'auth.lockout': { say: ({ actor, target, f }) => `${target || actor} was locked out for ${plural(f.minutes, 'minute')} after ${plural(f.failures, 'failed sign-in')}.` },
  'auth.password_accepted': { say: ({ actor }) => `${actor} entered the right password; a second factor is due.` },
  'auth.code_resent': { say: ({ actor, f }) => `${actor} asked for a new verification code${f.channel ? ` by ${String(f.channel)}` : ''}.` },
  'auth.password_reset_requested': {
    failures: true,
    say: ({ target, failed, f }) => (failed ? `A password reset was asked for ${String(f.username ?? 'a user')}, who is unknown or disabled: no link was sent.` : `A password reset link was sent to ${target}.`),
  },
  'auth.password_reset': { say: ({ actor, target }) => `${target || actor} set a new password with a reset link.` },
  'setup.first_administrator': { say: ({ actor }) => `${actor} created the first Administrator account with the setup link.` },
  'account.create': { say: ({ actor, target }) => `${actor} created the account ${target}.` },
  'account.update': { say: ({ actor, target, f }) => `${actor} updated the account ${target}${f.changed ? ` (${String(f.changed).replace(/,/g, ', ')})` : ''}.` },
  'account.assign_logo': {
    say: ({ actor, target, f }) => `${actor} assigned ${f.logo && f.logo !== '(No Logo)' ? `the logo ${String(f.logo)}` : target ? `the logo ${target}` : 'no logo'} to ${plural(f.accounts, 'account')}.`,
  },
  'account.import': { say: ({ actor, f }) => `${actor} imported ${plural(f.accounts, 'account')}.` },
  'user.create': { say: ({ actor, target, f }) => `${actor} created the user ${target}${f.role ? ` (${String(f.role)})` : ''}.` },
  'user.update': { say: ({ actor, target }) => `${actor} updated the user ${target}.` },
  'user.enable': { say: ({ actor, target }) => `${actor} enabled the user ${target}.` },
  'user.disable': { say: ({ actor, target }) => `${actor} disabled the user ${target}.` },
  'user.unlock': { say: ({ actor, target }) => `${actor} unlocked the user ${target}.` },
  'user.delete': { say: ({ actor, target, f }) => `${actor} deleted the user ${target}${f.successor ? `; their objects went to ${String(f.successor)}` : ''}.` },
  'user.assign_accounts': { say: ({ actor, target, f }) => `${actor} assigned ${plural(f.accounts, 'account')} to ${target}.` },
  'user.two_factor_reset': { say: ({ actor, target }) => `${actor} reset the two-factor authentication of ${target}.` },
  'user.assist_start': { say: ({ actor, target }) => `${actor} started assisting ${target}.` },
  // Recorded while still assisting: the actor is the assisted user, the Administrator assists.
  'user.assist_stop': { say: ({ actor, target, e }) => `${e.assisting_name ?? actor} stopped assisting ${target || actor}.` },
  'user.password_change': {
    failures: true,
    say: ({ actor, target, self, failed, reason }) => `${actor} ${failed ? 'could not change' : 'changed'} ${self ? 'their' : `${target}'s`} password${failed ? reason : ''}.`,
  },
  'user.profile_update': { say: ({ actor }) => `${actor} updated their profile.` },
  'user.two_factor_enable': { say: ({ actor, f }) => `${actor} turned on two-factor authentication${f.method ? ` (${String(f.method)})` : ''}.` },
  'user.two_factor_disable': { say: ({ actor }) => `${actor} turned off two-factor authentication.` },
  'user.two_factor_backup_email': { say: ({ actor }) => `${actor} changed their backup e-mail codes.` },
  'user.recovery_codes_regenerate': { say: ({ actor }) => `${actor} generated new recovery codes.` },
  'api_keys.generate': { say: ({ actor, target, self }) => `${actor} generated new API keys${self ? '' : ` for ${target}`}.` },
  'logo.create': { say: ({ actor, target }) => `${actor} added the logo ${target}.` },
  'logo.update': { say: ({ actor, target }) => `${actor} edited the logo ${target}.` },
  'logo.delete': { say: ({ actor, target, f }) => `${actor} deleted the logo ${target}${f.accounts ? `, removing it from ${plural(f.accounts, 'account')}` : ''}.` },
  'settings.require_2fa': { say: ({ actor, f }) => `${actor} turned ${f.value === true || f.value === 'true' ? 'on' : 'off'} the two-factor requirement.` },
  'settings.domain_add': { say: ({ actor, target }) => `${actor} added the approved domain ${target}.` },
  'settings.domain_remove': { say: ({ actor, target }) => `${actor} removed the approved domain ${target}.` },
  'settings.resource_links_reset': { say: ({ actor }) => `${actor} reset the Resource Center links.` },
  'audit.export': { say: ({ actor, f }) => `${actor} exported the audit log${Object.keys(f).length ? ` (${fieldsText(f)})` : ''}.` },
}

/** One readable sentence for an event (the API's `description`, the CSV's Description). */
export function describeEvent(e: Describable): string {
  const f = parseFields(e.fields)
  const target = e.target_name ?? e.target_id ?? ''
  const s: Sentence = {
    actor: e.actor_name ?? 'An anonymous user',
    target,
    self: e.actor_name !== null && (target === e.actor_name || !target),
    failed: e.outcome === 'failure',
    reason: f.reason ? ` (${String(f.reason)})` : '',
    f,
    e,
  }
  const known = SENTENCES[e.action]
  let text: string
  if (known) {
    text = known.say(s)
    if (s.failed && !known.failures) text += ` It failed${s.reason}.`
  } else {
    const label = actionLabel(e.action)
    const what = target ? ` ${e.target_type ? `${e.target_type.replace(/_/g, ' ')} ` : ''}${target}` : ''
    text = `${s.actor}: ${label.charAt(0).toLowerCase()}${label.slice(1)}${what}${s.failed ? ` (failed${s.reason ? `:${s.reason.slice(1, -1)}` : ''})` : ''}.`
  }
  return e.assisting_name && e.action !== 'user.assist_stop' ? `${text} Assisted by ${e.assisting_name}.` : text
}

/** `2024-05-01 13:45:07` (UTC, to the second). */
export function formatTime(ms: number): string {
  return new Date(ms).toISOString().slice(0, 19).replace('T', ' ')
}

// --- The page's filters -------------------------------------------------------------

const DATE = /^\d{4}-\d{2}-\d{2}$/
const CURSOR = /^(\d{1,15})_([A-Za-z0-9-]{1,64})$/
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i
const FULL_USERNAME = /^[^\s@]+@[^\s@]+\.[^\s@]+$/

/** Midnight UTC of a YYYY-MM-DD date, or null for anything that is not a real date. */
export function utcDay(value: string): number | null {
  if (!DATE.test(value)) return null
  const ms = Date.parse(`${value}T00:00:00Z`)
  return Number.isNaN(ms) || new Date(ms).toISOString().slice(0, 10) !== value ? null : ms
}

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

/**
 * The page's filters as a repository query. A full username matches exactly and a part
 * of one as a substring (both through the actor index); the target is an id exactly or a
 * part of a name.
 */
export function toAuditQuery(q: PageQuery): repo.AuditQuery {
  const filters: repo.AuditFilter[] = []
  if (q.actor) filters.push({ field: 'actor', op: FULL_USERNAME.test(q.actor) ? 'eq' : 'match', value: q.actor })
  if (q.action) filters.push({ field: 'action', op: 'eq', value: q.action })
  if (q.target) filters.push({ field: 'target', op: 'match', value: UUID.test(q.target) ? q.target.toLowerCase() : q.target })
  if (q.outcome) filters.push({ field: 'outcome', op: 'eq', value: q.outcome })
  if (q.from) filters.push({ field: 'date', op: 'gte', value: utcDay(q.from)! })
  // "To" includes its whole day.
  if (q.to) filters.push({ field: 'date', op: 'lt', value: utcDay(q.to)! + DAY })
  return { filters }
}

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
    const query = await repo.resolveAuditQuery(app.db, toAuditQuery(q))
    const page = { limit: PAGE_SIZE + 1 }
    let rows: repo.AuditRow[] = []
    let hasNewer = false
    let hasOlder = false
    let paged = false
    if (q.after) {
      rows = await repo.findAuditEvents(app.db, query, { ...page, after: q.after })
      // Less than a page of newer events left: show the newest page itself.
      if (rows.length > PAGE_SIZE) {
        paged = true
        hasNewer = true
        rows = rows.slice(1)
        hasOlder = await repo.hasAuditEventsBeyond(app.db, query, rows.at(-1)!, 'before')
      }
    } else if (q.before) {
      paged = true
      rows = await repo.findAuditEvents(app.db, query, { ...page, before: q.before })
      hasOlder = rows.length > PAGE_SIZE
      rows = rows.slice(0, PAGE_SIZE)
      hasNewer = await repo.hasAuditEventsBeyond(app.db, query, rows[0] ?? q.before, 'after')
    }
    if (!paged) {
      rows = await repo.findAuditEvents(app.db, query, page)
      hasOlder = rows.length > PAGE_SIZE
      rows = rows.slice(0, PAGE_SIZE)
    }
    // The newest page holds every match when there is no older one: nothing more to count.
    const total = !paged && !hasOlder ? rows.length : await repo.countAuditEvents(app.db, query, COUNT_CAP + 1)
    const state = filterParams(q)
    const qs = (extra: Record<string, string>) => `${PAGE_URL}${queryString({ ...state, ...extra })}`
    return {
      q,
      state,
      events: rows.map(viewEvent),
      total,
      countCapped: total > COUNT_CAP,
      countCap: COUNT_CAP,
      filtered: query.filters.length > 0,
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
    const rows = repo.iterateAuditEvents(app.db, await repo.resolveAuditQuery(app.db, toAuditQuery(q)))
    // The first batch is read before the response starts (a failure is still an error page),
    // and before the export is itself recorded, so that it does not list itself.
    const first = await rows.next()
    const filters = Object.fromEntries(Object.entries(filterParams(q)).filter((e): e is [string, string] => Boolean(e[1])))
    await audit(app.db, request, { action: 'audit.export', fields: filters })
    return reply
      .header('Content-Type', 'text/csv; charset=utf-8')
      .header('Content-Disposition', `attachment; filename="${exportFilename()}"`)
      .header('Cache-Control', 'no-store')
      .send(auditCsvStream(first, rows))
  })
}

export default routes
