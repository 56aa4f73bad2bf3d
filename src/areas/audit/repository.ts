import { type Expression, type ExpressionBuilder, type Kysely, type SqlBool, sql } from 'kysely'
import type { AuditEvent, Database } from '../../db/schema.ts'
import { uuid } from '../../lib/tokens.ts'

type Db = Kysely<Database>
type Eb = ExpressionBuilder<Database, 'audit_events'>

export async function insertAuditEvent(db: Kysely<Database>, event: AuditEvent): Promise<void> {
  await db.insertInto('audit_events').values(event).execute()
}

export function latestAuditEvents(db: Kysely<Database>, limit: number): Promise<AuditEvent[]> {
  return db.selectFrom('audit_events').selectAll().orderBy('created_at', 'desc').orderBy('id').limit(limit).execute()
}

// --- Searching the audit log (the Audit Log page, its CSV export and the API) ---------
//
// Every query walks (created_at, id) newest first with keyset paging, never OFFSET: at
// millions of events a page costs the same at the end as at the start. Equality filters
// (action, outcome, a full username, a target id, an actor) have an index each that ends
// in (created_at, id); substring filters read the newest rows until a page is full.

export type AuditFilterField = 'date' | 'action' | 'outcome' | 'actor' | 'actor_id' | 'target' | 'target_id'
export type AuditFilterOp = 'eq' | 'match' | 'gt' | 'gte' | 'lt' | 'lte'

/** One condition. `date` compares epoch milliseconds; text values compare case-insensitively. */
export interface AuditFilter {
  field: AuditFilterField
  op: AuditFilterOp
  value: string | number
}

export interface AuditQuery {
  filters: AuditFilter[]
  filterType?: 'and' | 'or'
}

/** A position in the (created_at, id) order: the row a page starts after. */
export interface AuditCursor {
  created_at: number
  id: string
}

export function escapeLike(s: string): string {
  return s.replace(/[\\%_]/g, (c) => `\\${c}`)
}

function contains(column: string, value: string): Expression<SqlBool> {
  return sql<SqlBool>`lower(${sql.ref(column)}) like ${`%${escapeLike(value.toLowerCase())}%`} escape '\\'`
}

const COMPARE = { gt: '>', gte: '>=', lt: '<', lte: '<=', eq: '=' } as const

function condition(eb: Eb, f: AuditFilter): Expression<SqlBool> {
  const text = String(f.value)
  switch (f.field) {
    case 'date':
      return eb('audit_events.created_at', COMPARE[f.op as keyof typeof COMPARE], Number(f.value))
    case 'action':
      return f.op === 'eq' ? eb('audit_events.action', '=', text) : contains('audit_events.action', text)
    case 'outcome':
      return eb('audit_events.outcome', '=', text as 'success' | 'failure')
    case 'actor':
      // Usernames are stored lower-cased.
      return f.op === 'eq' ? eb('audit_events.actor_name', '=', text.toLowerCase()) : contains('audit_events.actor_name', text)
    case 'actor_id': {
      // The user's id (a number) or uuid, as the API's actor object shows it.
      if (f.op === 'eq' && /^\d{1,15}$/.test(text)) return eb('audit_events.actor_user_id', '=', Number(text))
      const users = eb.selectFrom('users').select('users.id')
      return eb('audit_events.actor_user_id', 'in', f.op === 'eq' ? users.where('users.uuid', '=', text.toLowerCase()) : users.where(contains('users.uuid', text)))
    }
    case 'target_id':
      return f.op === 'eq' ? eb('audit_events.target_id', '=', text) : contains('audit_events.target_id', text)
    case 'target':
      // The page's Target box: an id exactly, or part of the name or id.
      return f.op === 'eq'
        ? eb('audit_events.target_id', '=', text)
        : eb.or([contains('audit_events.target_name', text), contains('audit_events.target_id', text)])
  }
}

function whereQuery(eb: Eb, q: AuditQuery): Expression<SqlBool> {
  const parts = q.filters.map((f) => condition(eb, f))
  return q.filterType === 'or' ? eb.or(parts) : eb.and(parts)
}

function baseQuery(db: Db, q: AuditQuery) {
  return db
    .selectFrom('audit_events')
    .leftJoin('users', 'users.id', 'audit_events.actor_user_id')
    .selectAll('audit_events')
    .select('users.uuid as actor_uuid')
    .$if(q.filters.length > 0, (qb) => qb.where((eb) => whereQuery(eb, q)))
}

/**
 * One page of events, newest first. `before` gives the page of older events after that
 * row; `after` the page of newer events before it (returned newest first too).
 */
export async function findAuditEvents(db: Db, q: AuditQuery, opts: { limit: number; before?: AuditCursor; after?: AuditCursor }) {
  if (opts.after) {
    const { created_at, id } = opts.after
    const rows = await baseQuery(db, q)
      .where(({ eb, refTuple, tuple }) => eb(refTuple('audit_events.created_at', 'audit_events.id'), '>', tuple(created_at, id)))
      .orderBy('audit_events.created_at', 'asc')
      .orderBy('audit_events.id', 'asc')
      .limit(opts.limit)
      .execute()
    return rows.reverse()
  }
  const before = opts.before
  return baseQuery(db, q)
    .$if(before !== undefined, (qb) => qb.where(({ eb, refTuple, tuple }) => eb(refTuple('audit_events.created_at', 'audit_events.id'), '<', tuple(before!.created_at, before!.id))))
    .orderBy('audit_events.created_at', 'desc')
    .orderBy('audit_events.id', 'desc')
    .limit(opts.limit)
    .execute()
}
export type AuditRow = Awaited<ReturnType<typeof findAuditEvents>>[number]

/** Whether any matching event lies beyond `cursor`: older ('before') or newer ('after'). */
export async function hasAuditEventsBeyond(db: Db, q: AuditQuery, cursor: AuditCursor, side: 'before' | 'after'): Promise<boolean> {
  const row = await db
    .selectFrom('audit_events')
    .select('audit_events.id')
    .$if(q.filters.length > 0, (qb) => qb.where((eb) => whereQuery(eb, q)))
    .where(({ eb, refTuple, tuple }) => eb(refTuple('audit_events.created_at', 'audit_events.id'), side === 'before' ? '<' : '>', tuple(cursor.created_at, cursor.id)))
    .limit(1)
    .executeTakeFirst()
  return row !== undefined
}

/** Matching events, counted up to `cap` (a count of millions would read millions of rows). */
export async function countAuditEvents(db: Db, q: AuditQuery, cap: number): Promise<number> {
  const inner = db
    .selectFrom('audit_events')
    .select('audit_events.id')
    .$if(q.filters.length > 0, (qb) => qb.where((eb) => whereQuery(eb, q)))
    .limit(cap)
  const row = await db.selectFrom(inner.as('matches')).select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow()
  return Number(row.n)
}

/** Every matching event, newest first, read a batch at a time (for exports of any size). */
export async function* iterateAuditEvents(db: Db, q: AuditQuery, batch = 1000): AsyncGenerator<AuditRow> {
  let before: AuditCursor | undefined
  for (;;) {
    const rows = await findAuditEvents(db, q, { limit: batch, before })
    yield* rows
    if (rows.length < batch) return
    const last = rows.at(-1)!
    before = { created_at: last.created_at, id: last.id }
  }
}

/**
 * The distinct actions in the log, in order. A loose index scan over the action index:
 * one index lookup per distinct action, however many events there are.
 */
export async function distinctAuditActions(db: Db): Promise<string[]> {
  const { rows } = await sql<{ action: string | null }>`
    with recursive found(action) as (
      select min(action) from audit_events
      union all
      select (select min(e.action) from audit_events e where e.action > found.action) from found where found.action is not null
    )
    select action from found where action is not null`.execute(db)
  return rows.map((r) => r.action!)
}
