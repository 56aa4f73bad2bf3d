import type { FastifyRequest } from 'fastify'
import type { Kysely } from 'kysely'
import type { Database, User } from '../../db/schema.ts'
import type { Actor, Origin } from '../../lib/actor.ts'
import { uuid } from '../../lib/tokens.ts'
import * as repo from './repository.ts'
import { signInCounter } from '../../ops/metrics.ts'

export interface AuditInput {
  action: string
  outcome?: 'success' | 'failure'
  /** Who acted; defaults to the signed-in user of the request. */
  actor?: Pick<User, 'id' | 'username'> | null
  target?: { type: string; id: string | number; name?: string | null }
  fields?: Record<string, string | number | boolean | null>
}

/** What audit() is told of who acted; a request is still accepted while services move to actors. */
type AuditBy = Actor | Origin | FastifyRequest | null

function actorFrom(by: AuditBy): Actor | Origin | null {
  if (by === null || !('server' in by)) return by
  return by.auth ? { user: by.auth.user, assistedBy: by.auth.assistedBy, ip: by.ip } : { ip: by.ip }
}

/** Records one audit event: UTC time, actor, the assisting Administrator, action, target, outcome. */
export async function audit(db: Kysely<Database>, by: AuditBy, input: AuditInput): Promise<void> {
  const from = actorFrom(by)
  const acting = from && 'user' in from ? from : null
  const actor = input.actor !== undefined ? input.actor : (acting?.user ?? null)
  // While assisting, every event names the Administrator behind the user.
  const assisting = acting?.assistedBy ?? null
  await repo.insertAuditEvent(db, {
    id: uuid(),
    created_at: Date.now(),
    actor_user_id: actor?.id ?? null,
    actor_name: actor?.username ?? null,
    assisting_user_id: assisting?.id ?? null,
    assisting_name: assisting?.username ?? null,
    action: input.action,
    outcome: input.outcome ?? 'success',
    target_type: input.target?.type ?? null,
    target_id: input.target ? String(input.target.id) : null,
    target_name: input.target?.name ?? null,
    ip: from?.ip ?? null,
    fields: JSON.stringify(input.fields ?? {}),
  })
  if (input.action === 'auth.sign_in') signInCounter.inc({ outcome: input.outcome ?? 'success' })
}

// --- Searching the log (the Audit Log page and its export; the API shares utcDay) ------

const DATE = /^\d{4}-\d{2}-\d{2}$/
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i
const FULL_USERNAME = /^[^\s@]+@[^\s@]+\.[^\s@]+$/
const DAY = 86_400_000

/** Midnight UTC of a YYYY-MM-DD date, or null for anything that is not a real date. */
export function utcDay(value: string): number | null {
  if (!DATE.test(value)) return null
  const ms = Date.parse(`${value}T00:00:00Z`)
  return Number.isNaN(ms) || new Date(ms).toISOString().slice(0, 10) !== value ? null : ms
}

/** The Audit Log page's filters, as its form gives them (dates as YYYY-MM-DD). */
export interface PageFilters {
  actor: string
  action: string
  target: string
  outcome?: 'success' | 'failure'
  from?: string
  to?: string
}

/**
 * The page's filters as a repository query. A full username matches exactly and a part
 * of one as a substring (both through the actor index); the target is an id exactly or a
 * part of a name.
 */
export function toAuditQuery(q: PageFilters): repo.AuditQuery {
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

/**
 * One page of matching events, newest first: the newest page, or the page before or after
 * a cursor; whether there are newer and older ones, and how many match (up to countCap + 1).
 */
export async function findEventsPage(db: Kysely<Database>, q: repo.AuditQuery, opts: { pageSize: number; countCap: number; before?: repo.AuditCursor; after?: repo.AuditCursor }) {
  const { pageSize } = opts
  const query = await repo.resolveAuditQuery(db, q)
  const page = { limit: pageSize + 1 }
  let rows: repo.AuditRow[] = []
  let hasNewer = false
  let hasOlder = false
  let paged = false
  if (opts.after) {
    rows = await repo.findAuditEvents(db, query, { ...page, after: opts.after })
    // Less than a page of newer events left: show the newest page itself.
    if (rows.length > pageSize) {
      paged = true
      hasNewer = true
      rows = rows.slice(1)
      hasOlder = await repo.hasAuditEventsBeyond(db, query, rows.at(-1)!, 'before')
    }
  } else if (opts.before) {
    paged = true
    rows = await repo.findAuditEvents(db, query, { ...page, before: opts.before })
    hasOlder = rows.length > pageSize
    rows = rows.slice(0, pageSize)
    hasNewer = await repo.hasAuditEventsBeyond(db, query, rows[0] ?? opts.before, 'after')
  }
  if (!paged) {
    rows = await repo.findAuditEvents(db, query, page)
    hasOlder = rows.length > pageSize
    rows = rows.slice(0, pageSize)
  }
  // The newest page holds every match when there is no older one: nothing more to count.
  const total = !paged && !hasOlder ? rows.length : await repo.countAuditEvents(db, query, opts.countCap + 1)
  return { rows, hasNewer, hasOlder, paged, total, filtered: query.filters.length > 0 }
}

/** Every matching event, newest first, read a batch at a time (the CSV export). */
export async function iterateEvents(db: Kysely<Database>, q: repo.AuditQuery): Promise<AsyncGenerator<repo.AuditRow>> {
  return repo.iterateAuditEvents(db, await repo.resolveAuditQuery(db, q))
}
