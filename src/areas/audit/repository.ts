import { type Expression, type ExpressionBuilder, type Kysely, type SqlBool, sql } from 'kysely'
import type { AuditEvent, Database } from '../../db/schema.ts'
import { uuid } from '../../lib/tokens.ts'
import { rowId } from '../../lib/row-id.ts'
import { escapeLike } from '../../db/like.ts'

type Db = Kysely<Database>
type Eb = ExpressionBuilder<Database, 'audit_events'>

export async function insertAuditEvent(db: Kysely<Database>, event: AuditEvent): Promise<void> {
  await db.insertInto('audit_events').values(event).execute()
}

export function latestAuditEvents(db: Kysely<Database>, limit: number): Promise<AuditEvent[]> {
  return db.selectFrom('audit_events').selectAll().orderBy('created_at', 'desc').orderBy('id').limit(limit).execute()
}

/** Whether an audit event with this action and target exists since `since` (the created_at index narrows it). */
export async function auditEventExists(db: Db, action: string, targetId: string, since: number): Promise<boolean> {
  const row = await db
    .selectFrom('audit_events')
    .select('id')
    .where('created_at', '>=', since)
    .where('action', '=', action)
    .where('target_id', '=', targetId)
    .executeTakeFirst()
  return Boolean(row)
}

// --- Searching the audit log (the Audit Log page, its CSV export and the API) ---------
//
// Every query walks (created_at, id) newest first with keyset paging, never OFFSET: at
// millions of events a page costs the same at the end as at the start. Equality filters
// (action, outcome, a full username, a target id, an actor) have an index each that ends
// in (created_at, id); substring filters read the newest rows until a page is full.

export type AuditFilterField = 'date' | 'action' | 'outcome' | 'actor' | 'actor_id' | 'target' | 'target_id'
export type AuditFilterOp = 'eq' | 'match' | 'in' | 'gt' | 'gte' | 'lt' | 'lte'

/** One condition. `date` compares epoch milliseconds; text values compare case-insensitively. */
export interface AuditFilter {
  field: AuditFilterField
  op: AuditFilterOp
  /** A list for `in` (actor names or user ids, as resolveAuditQuery makes them). */
  value: string | number | Array<string | number>
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

function contains(column: string, value: string): Expression<SqlBool> {
  return sql<SqlBool>`lower(${sql.ref(column)}) like ${`%${escapeLike(value.toLowerCase())}%`} escape '\\'`
}

const COMPARE = { gt: '>', gte: '>=', lt: '<', lte: '<=', eq: '=' } as const

/** A user's id as a filter gives it (a uuid otherwise). */
const DIGITS = /^\d+$/

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
      if (f.op === 'in') return Array.isArray(f.value) && f.value.length ? eb('audit_events.actor_name', 'in', f.value.map(String)) : sql<SqlBool>`1 = 0`
      return f.op === 'eq' ? eb('audit_events.actor_name', '=', text.toLowerCase()) : contains('audit_events.actor_name', text)
    case 'actor_id': {
      if (f.op === 'in') {
        // Ids outside the column's range name no one (PostgreSQL would refuse them with an error).
        const ids = Array.isArray(f.value) ? f.value.map((v) => rowId(String(v))).filter((id) => id !== null) : []
        return ids.length ? eb('audit_events.actor_user_id', 'in', ids) : sql<SqlBool>`1 = 0`
      }
      // The user's id (a number) or uuid, as the API's actor object shows it.
      if (f.op === 'eq' && DIGITS.test(text)) {
        const id = rowId(text)
        return id === null ? sql<SqlBool>`1 = 0` : eb('audit_events.actor_user_id', '=', id)
      }
      const users = eb.selectFrom('users').select('users.id')
      return eb('audit_events.actor_user_id', 'in', f.op === 'eq' ? users.where('users.uuid', '=', text.toLowerCase()) : users.where(contains('users.uuid', text)))
    }
    case 'target_id':
      return f.op === 'eq' ? eb('audit_events.target_id', '=', text) : contains('audit_events.target_id', text)
    case 'target':
      // The page's Target box: an id exactly, or part of a name (both indexed on PostgreSQL).
      return eb.or([eb('audit_events.target_id', '=', text), contains('audit_events.target_name', text)])
  }
}

/** Up to this many actor names (or users) stand in for a part of one; beyond, it is matched row by row. */
const ACTOR_NAMES_MAX = 500

/**
 * Prepares a query for the indexes. A part of a username becomes the list of the distinct
 * actor names containing it (found in the actor index, one lookup per distinct name), and
 * a user's uuid (or part of one) the ids of the users it names: the actor indexes then
 * serve them as they serve a full username or a user id. No match, no rows to read.
 */
export async function resolveAuditQuery(db: Db, q: AuditQuery): Promise<AuditQuery> {
  const filters: AuditFilter[] = []
  for (const f of q.filters) {
    if (f.field === 'actor_id' && !(f.op === 'eq' && DIGITS.test(String(f.value)))) {
      // A user's uuid, or a part of one: the users it names (a small table) by their ids.
      const text = String(f.value).toLowerCase()
      const users = await db
        .selectFrom('users')
        .select('id')
        .where(f.op === 'eq' ? sql<SqlBool>`users.uuid = ${text}` : contains('users.uuid', text))
        .limit(ACTOR_NAMES_MAX + 1)
        .execute()
      filters.push(users.length <= ACTOR_NAMES_MAX ? { field: 'actor_id', op: 'in', value: users.map((u) => u.id) } : f)
      continue
    }
    if (f.field !== 'actor' || f.op !== 'match') {
      filters.push(f)
      continue
    }
    const { rows } = await sql<{ name: string }>`
      with recursive found(name) as (
        select min(actor_name) from audit_events
        union all
        select (select min(e.actor_name) from audit_events e where e.actor_name > found.name) from found where found.name is not null
      )
      select name from found where name is not null and lower(name) like ${`%${escapeLike(String(f.value).toLowerCase())}%`} escape '\\'
      limit ${ACTOR_NAMES_MAX + 1}`.execute(db)
    filters.push(rows.length <= ACTOR_NAMES_MAX ? { field: 'actor', op: 'in', value: rows.map((r) => r.name) } : f)
  }
  return { ...q, filters }
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

// --- Demo history -------------------------------------------------------------------

type DemoUser = { id: number; username: string; role?: number; enabled?: number; locked_until?: number | null }
type DemoAccount = { uuid: string; container_name: string }

const ROLE_LABELS: Record<number, string> = { 16: 'Basic', 24: 'VM Scan Operator', 32: 'VM Standard', 40: 'VM Scan Manager', 64: 'Administrator' }

/**
 * About 60 past events over the last 30 days, as the portal itself would have recorded
 * them: daily sign-ins, a mistyped password, sign-ins by unknown usernames, a lockout
 * that is still running, users created, accounts assigned and updated, a logo assigned,
 * a user disabled, an assist session. The first Administrator of `users` (or the first
 * user) acts as the Administrator; a disabled and a locked user are picked by their row
 * when given, else the last two. Returns how many events it inserted.
 */
export async function seedDemoAuditHistory(db: Kysely<Database>, users: DemoUser[], accounts: DemoAccount[]): Promise<number> {
  if (users.length === 0) return 0
  const now = Date.now()
  const minute = 60_000
  const hour = 60 * minute
  const day = 24 * hour
  const admin = users.find((u) => u.role === 64) ?? users[0]!
  const others = users.filter((u) => u !== admin)
  const disabled = others.find((u) => u.enabled === 0) ?? (others.length >= 2 ? others.at(-2) : undefined)
  const locked = others.find((u) => (u.locked_until ?? 0) > now) ?? (others.length >= 1 ? others.at(-1) : undefined)
  const active = others.filter((u) => u !== disabled && u !== locked)
  const ipOf = (u: DemoUser | null) => (u === admin ? '198.51.100.23' : u ? `203.0.113.${10 + (users.indexOf(u) * 7) % 200}` : '192.0.2.66')
  // Targets name users by uuid, as the portal's own events do.
  const uuids = new Map((await db.selectFrom('users').select(['id', 'uuid']).where('id', 'in', users.map((u) => u.id)).execute()).map((r) => [r.id, r.uuid]))
  const userTarget = (u: DemoUser) => ({ type: 'user', id: uuids.get(u.id) ?? String(u.id), name: u.username })
  const accountTarget = (a: DemoAccount) => ({ type: 'account', id: a.uuid, name: a.container_name })
  const logos = await db.selectFrom('logos').select(['id', 'name']).orderBy('id').limit(2).execute()

  type Input = {
    at: number
    actor: DemoUser | null
    action: string
    outcome?: 'success' | 'failure'
    target?: { type: string; id: string; name: string | null }
    fields?: Record<string, string | number | boolean | null>
    assisting?: DemoUser
  }
  const events: Input[] = []
  const add = (e: Input) => events.push(e)
  // A fixed pseudo-random sequence: the same history on every seed, spread over the day.
  let seed = 20240611
  const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31)
  const at = (daysAgo: number, hourOfDay: number) => {
    const midnight = Math.floor((now - daysAgo * day) / day) * day
    return Math.min(now - 5 * minute, midnight + hourOfDay * hour + Math.floor(rand() * 50) * minute)
  }
  const signIn = (u: DemoUser, time: number, rememberMe = false) =>
    add({ at: time, actor: u, action: 'auth.sign_in', target: userTarget(u), fields: { remember_me: rememberMe, method: 'password' } })

  // A month ago: the Administrator sets up the team and their accounts.
  signIn(admin, at(30, 8))
  for (const [i, u] of others.slice(0, 4).entries()) {
    add({ at: at(30, 9) + i * 3 * minute, actor: admin, action: 'user.create', target: userTarget(u), fields: { ...(u.role ? { role: ROLE_LABELS[u.role] ?? String(u.role) } : {}), accounts: 0 } })
  }
  for (const [i, u] of active.slice(0, 3).entries()) {
    add({ at: at(29, 10) + i * 2 * minute, actor: admin, action: 'user.assign_accounts', target: userTarget(u), fields: { accounts: Math.min(accounts.length, 4 + i * 3) } })
  }
  if (accounts[0]) add({ at: at(28, 11), actor: admin, action: 'account.create', target: accountTarget(accounts[0]) })

  // Day-to-day sign-ins: the Administrator most days, the others now and then.
  for (let d = 28; d >= 0; d -= 2) {
    if (d > 0) signIn(admin, at(d, 8), d % 6 === 0)
    const u = active[(d / 2) % Math.max(1, active.length)]
    if (u) signIn(u, at(d, 13))
  }
  for (const [i, u] of active.entries()) {
    if (i % 2 === 0) add({ at: at(25 - i, 17), actor: u, action: 'auth.sign_out', target: userTarget(u) })
  }

  // A mistyped password, then the right one.
  const typo = active[1] ?? active[0]
  if (typo) {
    const t = at(21, 9)
    add({ at: t, actor: typo, action: 'auth.sign_in', outcome: 'failure', target: userTarget(typo), fields: { reason: 'wrong password' } })
    signIn(typo, t + 1 * minute)
  }
  // Someone guessing usernames that do not exist.
  for (const [i, name] of ['admin@northwind-mssp.example', 'root@northwind-mssp.example', 'test@northwind-mssp.example'].entries()) {
    add({ at: at(17, 3) + i * 40_000, actor: null, action: 'auth.sign_in', outcome: 'failure', fields: { username: name, reason: 'unknown user' } })
  }

  // Account maintenance by the Administrator.
  for (const [i, a] of accounts.slice(1, 5).entries()) {
    const changed = i % 2 === 0 ? 'notes' : 'custom_name'
    add({ at: at(20 - i * 4, 15), actor: admin, action: 'account.update', target: accountTarget(a), fields: { changed, custom_name_changed: changed === 'custom_name', notes_changed: changed === 'notes' } })
  }
  if (logos[0]) {
    add({ at: at(14, 16), actor: admin, action: 'account.assign_logo', target: { type: 'logo', id: String(logos[0].id), name: logos[0].name }, fields: { accounts: Math.min(3, accounts.length), logo: logos[0].name } })
  }

  // A forgotten password, reset by mail.
  const forgot = active[2] ?? active[0]
  if (forgot) {
    add({ at: at(18, 8), actor: null, action: 'auth.password_reset_requested', target: userTarget(forgot) })
    add({ at: at(18, 8) + 6 * minute, actor: forgot, action: 'auth.password_reset', target: userTarget(forgot) })
  }
  // API keys and a second factor.
  if (active[0]) {
    add({ at: at(11, 10), actor: active[0], action: 'api_keys.generate', target: userTarget(active[0]) })
    add({ at: at(9, 14), actor: active[0], action: 'user.two_factor_enable', target: userTarget(active[0]), fields: { method: 'authenticator app' } })
  }

  // A user who left: disabled.
  if (disabled) add({ at: at(13, 12), actor: admin, action: 'user.disable', target: userTarget(disabled) })

  // The Administrator assists a user with an account change.
  const assisted = active[0]
  if (assisted && accounts[5]) {
    const t = at(5, 11)
    add({ at: t, actor: admin, action: 'user.assist_start', target: userTarget(assisted) })
    add({ at: t + 4 * minute, actor: assisted, assisting: admin, action: 'account.update', target: accountTarget(accounts[5]), fields: { changed: 'notes', custom_name_changed: false, notes_changed: true } })
    add({ at: t + 7 * minute, actor: assisted, assisting: admin, action: 'user.assist_stop', target: userTarget(assisted) })
  }

  // Within the last two hours: seven wrong passwords and a lockout that doubles.
  if (locked) {
    for (let n = 1; n <= 7; n++) {
      const t = now - (2 * hour - n * 15 * minute) - (n === 7 ? 0 : 2 * minute)
      add({ at: Math.min(t, now - 2 * minute), actor: locked, action: 'auth.sign_in', outcome: 'failure', target: userTarget(locked), fields: { reason: 'wrong password' } })
      if (n >= 5) add({ at: Math.min(t, now - 2 * minute) + 1, actor: locked, action: 'auth.lockout', target: userTarget(locked), fields: { minutes: 2 ** (n - 5), failures: n } })
    }
  }

  const rows: AuditEvent[] = events.map((e) => ({
    id: uuid(),
    created_at: e.at,
    actor_user_id: e.actor?.id ?? null,
    actor_name: e.actor?.username ?? null,
    assisting_user_id: e.assisting?.id ?? null,
    assisting_name: e.assisting?.username ?? null,
    action: e.action,
    outcome: e.outcome ?? 'success',
    target_type: e.target?.type ?? null,
    target_id: e.target?.id ?? null,
    target_name: e.target?.name ?? null,
    ip: e.action === 'auth.password_reset_requested' ? ipOf(forgot ?? null) : ipOf(e.assisting ?? e.actor),
    fields: JSON.stringify(e.fields ?? {}),
  }))
  for (let i = 0; i < rows.length; i += 50) await db.insertInto('audit_events').values(rows.slice(i, i + 50)).execute()
  return rows.length
}
