import { type Expression, type Kysely, type SqlBool, sql, type ExpressionBuilder } from 'kysely'
import type { Account, Database, NewAccount } from '../../db/schema.ts'
import type { Dialect } from '../../db/index.ts'
import { ADMINISTRATOR } from '../../lib/roles.ts'
import { appLabel, parseApps } from './licensed-apps.ts'

type Db = Kysely<Database>
type Eb = ExpressionBuilder<Database, 'accounts'>

/** Who is asking: Administrators see every account, everyone else their assigned ones. */
export interface Viewer {
  id: number
  role: number
}

export const SORTABLE = ['container_name', 'custom_name', 'site_id', 'region', 'licensed_assets', 'license_utilization', 'license_expiration_date'] as const
export type SortColumn = (typeof SORTABLE)[number]

export type FilterOp = 'eq' | 'neq' | 'match' | 'nmatch' | 'lt' | 'gt' | 'lte' | 'gte'
export interface Filter {
  field: string
  op: FilterOp
  value: string
}

export interface AccountQuery {
  /** Wildcard text: every word must appear in one of the searchable fields. */
  text?: string
  filters?: Filter[]
  filterType?: 'and' | 'or'
  sort?: SortColumn
  dir?: 'asc' | 'desc'
  limit?: number
  offset?: number
}

/** The lower-cased text the trigram index serves: every field the Search box matches. */
export function searchTextOf(a: Pick<Account, 'container_name' | 'custom_name' | 'licensed_apps' | 'site_id' | 'notes'>): string {
  const apps = parseApps(a.licensed_apps)
  return [a.container_name, a.custom_name ?? '', apps.join(' '), apps.map(appLabel).join(' '), a.site_id ?? '', a.notes]
    .join('\n')
    .toLowerCase()
}

export function utilizationOf(assets: number, limit: number): number {
  return limit > 0 ? Math.round((assets / limit) * 1000) / 10 : 0
}

function escapeLike(s: string): string {
  return s.replace(/[\\%_]/g, (c) => `\\${c}`)
}

function visibleTo(eb: Eb, viewer: Viewer): Expression<SqlBool> {
  if (viewer.role === ADMINISTRATOR) return eb.lit(true)
  return eb('accounts.id', 'in', eb.selectFrom('user_accounts').select('user_accounts.account_id').where('user_accounts.user_id', '=', viewer.id))
}

function textCondition(eb: Eb, dialect: Dialect, word: string): Expression<SqlBool> {
  const lower = word.toLowerCase()
  // SQLite: the FTS5 trigram table answers substrings of 3+ characters; shorter ones scan.
  if (dialect === 'sqlite' && [...lower].length >= 3) {
    const phrase = `"${lower.replace(/"/g, '""')}"`
    return sql<SqlBool>`accounts.id in (select rowid from accounts_fts where accounts_fts match ${phrase})`
  }
  // PostgreSQL: LIKE on the lower-cased column uses the pg_trgm GIN index.
  return sql<SqlBool>`accounts.search_text like ${`%${escapeLike(lower)}%`} escape '\\'`
}

const DAY = 86_400_000

function filterCondition(eb: Eb, f: Filter): Expression<SqlBool> {
  const numericOps = { eq: '=', neq: '<>', lt: '<', gt: '>', lte: '<=', gte: '>=' } as const
  const textColumn = ({ container_name: 'container_name', custom_name: 'custom_name', site_id: 'site_id', region: 'region', notes: 'notes', sso_username: 'sso_username', lms_customer_id: 'lms_customer_id' } as const)[f.field as 'region']
  if (textColumn) {
    const col = sql.ref(`accounts.${textColumn}`)
    if (f.op === 'eq') return sql<SqlBool>`lower(coalesce(${col}, '')) = ${f.value.toLowerCase()}`
    if (f.op === 'neq') return sql<SqlBool>`lower(coalesce(${col}, '')) <> ${f.value.toLowerCase()}`
    const like = sql<SqlBool>`lower(coalesce(${col}, '')) like ${`%${escapeLike(f.value.toLowerCase())}%`} escape '\\'`
    return f.op === 'nmatch' ? eb.not(like) : like
  }
  if (f.field === 'licensed_apps') {
    const has = sql<SqlBool>`(',' || accounts.licensed_apps || ',') like ${`%,${escapeLike(f.value.toLowerCase())},%`} escape '\\'`
    return f.op === 'neq' || f.op === 'nmatch' ? eb.not(has) : has
  }
  if (f.field === 'logo_uuid') {
    const sub = eb.selectFrom('logos').select('logos.id').where('logos.uuid', '=', f.value)
    return f.op === 'neq' ? eb.or([eb('accounts.logo_id', 'is', null), eb('accounts.logo_id', 'not in', sub)]) : eb('accounts.logo_id', 'in', sub)
  }
  const numericColumn = ({ licensed_assets: 'licensed_assets', licensed_assets_limit: 'licensed_assets_limit', license_utilization: 'license_utilization' } as const)[f.field as 'licensed_assets']
  const op = numericOps[f.op as keyof typeof numericOps]
  if (numericColumn && op) return eb(`accounts.${numericColumn}`, op, Number(f.value))
  if (f.field === 'days_to_expiration' && op) {
    // days until expiry (negative once expired) compared with the value, from now.
    const boundary = Date.now() + Number(f.value) * DAY
    if (op === '=') return eb.and([eb('accounts.license_expiration_date', '>=', boundary - DAY / 2), eb('accounts.license_expiration_date', '<', boundary + DAY / 2)])
    return eb('accounts.license_expiration_date', op, boundary)
  }
  throw new Error(`unsupported filter ${f.field}:${f.op}`)
}

function whereQuery(eb: Eb, dialect: Dialect, viewer: Viewer, q: AccountQuery): Expression<SqlBool> {
  const conditions: Expression<SqlBool>[] = [visibleTo(eb, viewer)]
  for (const word of (q.text ?? '').trim().split(/\s+/).filter(Boolean).slice(0, 8)) conditions.push(textCondition(eb, dialect, word))
  if (q.filters?.length) {
    const parts = q.filters.map((f) => filterCondition(eb, f))
    conditions.push(q.filterType === 'or' ? eb.or(parts) : eb.and(parts))
  }
  return eb.and(conditions)
}

export async function findAccounts(db: Db, dialect: Dialect, viewer: Viewer, q: AccountQuery) {
  const sort = q.sort ?? 'container_name'
  const dir = q.dir ?? 'asc'
  let query = db
    .selectFrom('accounts')
    .leftJoin('logos', 'logos.id', 'accounts.logo_id')
    .selectAll('accounts')
    .select(['logos.uuid as logo_uuid', 'logos.name as logo_name'])
    .where((eb) => whereQuery(eb, dialect, viewer, q))
    .orderBy(`accounts.${sort}`, dir)
    .orderBy('accounts.id', dir)
  if (q.limit !== undefined) query = query.limit(q.limit).offset(q.offset ?? 0)
  return query.execute()
}
export type AccountRow = Awaited<ReturnType<typeof findAccounts>>[number]

export async function countAccounts(db: Db, dialect: Dialect, viewer: Viewer, q: AccountQuery): Promise<number> {
  const row = await db
    .selectFrom('accounts')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .where((eb) => whereQuery(eb, dialect, viewer, q))
    .executeTakeFirstOrThrow()
  return Number(row.n)
}

/** Streams matching accounts in id order, a page at a time (for exports of any size). */
export async function* iterateAccounts(db: Db, dialect: Dialect, viewer: Viewer, q: AccountQuery, batch = 1000): AsyncGenerator<AccountRow> {
  let afterId = 0
  for (;;) {
    const rows = await db
      .selectFrom('accounts')
      .leftJoin('logos', 'logos.id', 'accounts.logo_id')
      .selectAll('accounts')
      .select(['logos.uuid as logo_uuid', 'logos.name as logo_name'])
      .where((eb) => eb.and([whereQuery(eb, dialect, viewer, q), eb('accounts.id', '>', afterId)]))
      .orderBy('accounts.id')
      .limit(batch)
      .execute()
    yield* rows
    if (rows.length < batch) return
    afterId = rows.at(-1)!.id
  }
}

export function findVisibleAccount(db: Db, viewer: Viewer, uuid: string) {
  return db
    .selectFrom('accounts')
    .leftJoin('logos', 'logos.id', 'accounts.logo_id')
    .selectAll('accounts')
    .select(['logos.uuid as logo_uuid', 'logos.name as logo_name'])
    .where('accounts.uuid', '=', uuid)
    .where((eb) => visibleTo(eb, viewer))
    .executeTakeFirst()
}

export async function findVisibleAccountIds(db: Db, viewer: Viewer, uuids: string[]): Promise<Array<{ id: number; uuid: string }>> {
  if (uuids.length === 0) return []
  const found: Array<{ id: number; uuid: string }> = []
  // Chunks keep the parameter count under SQLite's limit.
  for (let i = 0; i < uuids.length; i += 500) {
    found.push(
      ...(await db
        .selectFrom('accounts')
        .select(['accounts.id', 'accounts.uuid'])
        .where('accounts.uuid', 'in', uuids.slice(i, i + 500))
        .where((eb) => visibleTo(eb, viewer))
        .execute()),
    )
  }
  return found
}

export async function insertAccount(db: Db, account: Omit<NewAccount, 'search_text' | 'license_utilization'>): Promise<Account> {
  const full = {
    ...account,
    licensed_apps: account.licensed_apps ?? '',
    notes: account.notes ?? '',
    licensed_assets: account.licensed_assets ?? 0,
    licensed_assets_limit: account.licensed_assets_limit ?? 0,
  }
  return db
    .insertInto('accounts')
    .values({ ...full, license_utilization: utilizationOf(full.licensed_assets, full.licensed_assets_limit), search_text: searchTextOf({ ...full, custom_name: full.custom_name ?? null, site_id: full.site_id ?? null }) })
    .returningAll()
    .executeTakeFirstOrThrow()
}

/** Updates an account and keeps its derived columns (search text, utilization) in step. */
export async function updateAccount(db: Db, current: Account, changes: Partial<Omit<NewAccount, 'id' | 'uuid' | 'search_text' | 'license_utilization'>>): Promise<Account> {
  const next = { ...current, ...changes }
  return db
    .updateTable('accounts')
    .set({ ...changes, search_text: searchTextOf(next), license_utilization: utilizationOf(next.licensed_assets, next.licensed_assets_limit) })
    .where('id', '=', current.id)
    .returningAll()
    .executeTakeFirstOrThrow()
}

export async function insertNameHistory(db: Db, row: Database['account_name_history'] extends infer T ? { [K in keyof T]: T[K] } : never): Promise<void> {
  await db.insertInto('account_name_history').values(row).execute()
}

export function nameHistory(db: Db, accountId: number) {
  return db.selectFrom('account_name_history').selectAll().where('account_id', '=', accountId).orderBy('created_at', 'desc').orderBy('uuid').execute()
}

export async function assignedUserCount(db: Db, accountId: number): Promise<number> {
  const row = await db.selectFrom('user_accounts').select((eb) => eb.fn.countAll<number>().as('n')).where('account_id', '=', accountId).executeTakeFirstOrThrow()
  return Number(row.n)
}

export function assignedAccountUuids(db: Db, userId: number) {
  return db
    .selectFrom('user_accounts')
    .innerJoin('accounts', 'accounts.id', 'user_accounts.account_id')
    .select('accounts.uuid')
    .where('user_accounts.user_id', '=', userId)
    .orderBy('accounts.container_name')
    .execute()
}

/** Replaces a user's assignments with exactly these accounts. */
export async function replaceAssignments(db: Db, userId: number, accountIds: number[], now: number): Promise<void> {
  await db.deleteFrom('user_accounts').where('user_id', '=', userId).execute()
  for (let i = 0; i < accountIds.length; i += 300) {
    const chunk = accountIds.slice(i, i + 300)
    if (chunk.length) await db.insertInto('user_accounts').values(chunk.map((account_id) => ({ user_id: userId, account_id, created_at: now }))).execute()
  }
}

export async function setLogoForAccounts(db: Db, accountIds: number[], logoId: number | null, now: number): Promise<number> {
  let updated = 0
  for (let i = 0; i < accountIds.length; i += 500) {
    const res = await db.updateTable('accounts').set({ logo_id: logoId, modified_at: now }).where('id', 'in', accountIds.slice(i, i + 500)).executeTakeFirst()
    updated += Number(res.numUpdatedRows)
  }
  return updated
}

export function distinctRegions(db: Db): Promise<Array<{ region: string | null }>> {
  return db.selectFrom('accounts').select('region').distinct().where('region', 'is not', null).orderBy('region').limit(200).execute()
}
