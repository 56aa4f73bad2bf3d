import { type Expression, type Kysely, type SqlBool, sql, type ExpressionBuilder } from 'kysely'
import type { Account, Database, NewAccount } from '../../db/schema.ts'
import type { Dialect } from '../../db/index.ts'
import { ADMINISTRATOR } from '../../lib/roles.ts'
import { preparedQueries, preparedQuery } from '../../db/prepared.ts'
import { appLabel, parseApps } from './licensed-apps.ts'
import { escapeLike } from '../../db/like.ts'

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
  /** Set when the match count is large: page through the sort index instead of sorting all matches. */
  preferSortIndex?: boolean
  /**
   * For a user other than an Administrator: true (the default) when they have few assigned
   * accounts, whose rows are then read and the words checked on each; false when they have
   * many, which are then looked up row by row while the indexes drive (see visibleTo).
   */
  scanAssigned?: boolean
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

/**
 * The accounts a user may see. `fewAssigned`: the query is driven by the assignments (the
 * set of ids); otherwise each candidate row is looked up in them (the primary key on
 * user_id, account_id), so that a user with 20,000 accounts needs no such set per query.
 */
function visibleTo(eb: Eb, viewer: Viewer, fewAssigned = true): Expression<SqlBool> | null {
  if (viewer.role === ADMINISTRATOR) return null
  if (fewAssigned) return eb('accounts.id', 'in', eb.selectFrom('user_accounts').select('user_accounts.account_id').where('user_accounts.user_id', '=', viewer.id))
  return eb.exists(eb.selectFrom('user_accounts').select('user_accounts.account_id').where('user_accounts.user_id', '=', viewer.id).whereRef('user_accounts.account_id', '=', 'accounts.id'))
}

/**
 * Whether a user has few assigned accounts (counted from the assignments alone, up to the
 * limit). Few, the usual case, are best searched by checking the words on those rows (see
 * AccountQuery.scanAssigned); many, through the indexes as for an Administrator.
 */
async function hasFewAssigned(db: Db, userId: number): Promise<boolean> {
  const [row] = await assignedUpToLimit(db, [userId])
  return Number(row!.n) <= ASSIGNED_SCAN_LIMIT
}
const ASSIGNED_SCAN_LIMIT = 2000
const assignedUpToLimit = preparedQuery((db) =>
  db.selectFrom((qb) => qb.selectFrom('user_accounts').select('account_id').where('user_id', '=', 0).limit(sql.lit(ASSIGNED_SCAN_LIMIT + 1)).as('assigned')).select((eb) => eb.fn.countAll<number>().as('n')),
)

/**
 * Words of the Search box: every word must appear. Those of 3+ characters can use the trigram
 * index; shorter ones ("17", "us") are checked on the rows the others found.
 */
function searchWords(text: string | undefined): { long: string[]; short: string[] } {
  const words = (text ?? '').trim().toLowerCase().split(/\s+/).filter(Boolean).slice(0, 8)
  const isLong = (w: string) => [...w].length >= 3
  return { long: words.filter(isLong), short: words.filter((w) => !isLong(w)) }
}

function searchWordsList(text: string | undefined): string[] {
  const { long, short } = searchWords(text)
  return [...long, ...short]
}

/**
 * The rowids of the trigram index's matches for the long words that the viewer may see (a
 * user with many assigned accounts: each match looked up in the assignments), or null when
 * the index should not drive (a user with few: their rows are read instead).
 */
function visibleMatches(viewer: Viewer, q: AccountQuery, long: string[]) {
  const match = sql`select rowid as id from accounts_fts where accounts_fts match ${ftsQuery(long)}`
  if (viewer.role === ADMINISTRATOR) return match
  if (q.scanAssigned !== false) return null
  return sql`${match} and exists (select 1 from user_accounts where user_accounts.user_id = ${viewer.id} and user_accounts.account_id = accounts_fts.rowid)`
}

/** The FTS5 query for the long words: each a quoted trigram phrase, all required. */
function ftsQuery(long: string[]): string {
  return long.map((w) => `"${w.replace(/"/g, '""')}"`).join(' AND ')
}

function likeWord(word: string): Expression<SqlBool> {
  return sql<SqlBool>`accounts.search_text like ${`%${escapeLike(word)}%`} escape '\\'`
}

/**
 * The text's conditions. On SQLite the trigram index finds the long words' matches; with many
 * matches (`preferSortIndex`), `+` keeps SQLite from driving the query by that set, so it walks
 * the sort index and stops after a page. PostgreSQL uses LIKE on the lower-cased column, which
 * its pg_trgm GIN index serves.
 */
function textConditions(dialect: Dialect, text: string | undefined, preferSortIndex: boolean): Expression<SqlBool>[] {
  const { long, short } = searchWords(text)
  if (dialect !== 'sqlite' || !long.length) return [...long, ...short].map(likeWord)
  const fts = sql<SqlBool>`${sql.raw(preferSortIndex ? '+' : '')}accounts.id in (select rowid from accounts_fts where accounts_fts match ${ftsQuery(long)})`
  return [fts, ...short.map(likeWord)]
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
    // eq/neq: within (or outside) the day around the boundary.
    if (op === '=') return eb.and([eb('accounts.license_expiration_date', '>=', boundary - DAY / 2), eb('accounts.license_expiration_date', '<', boundary + DAY / 2)])
    if (op === '<>') return eb.or([eb('accounts.license_expiration_date', '<', boundary - DAY / 2), eb('accounts.license_expiration_date', '>=', boundary + DAY / 2)])
    return eb('accounts.license_expiration_date', op, boundary)
  }
  throw new Error(`unsupported filter ${f.field}:${f.op}`)
}

/** The query's conditions; an Administrator's unfiltered list has none (so count(*) stays a fast path). */
function whereQuery(eb: Eb, dialect: Dialect, viewer: Viewer, q: AccountQuery): Expression<SqlBool> {
  const visible = visibleTo(eb, viewer, q.scanAssigned ?? true)
  const conditions: Expression<SqlBool>[] = visible ? [visible] : []
  const scanRows = visible !== null && (q.scanAssigned ?? true)
  conditions.push(...(scanRows ? searchWordsList(q.text).map(likeWord) : textConditions(dialect, q.text, q.preferSortIndex ?? false)))
  if (q.filters?.length) {
    const parts = q.filters.map((f) => filterCondition(eb, f))
    conditions.push(q.filterType === 'or' ? eb.or(parts) : eb.and(parts))
  }
  return conditions.length === 1 ? conditions[0]! : eb.and(conditions)
}

function hasConditions(viewer: Viewer, q: AccountQuery): boolean {
  return viewer.role !== ADMINISTRATOR || Boolean(q.text?.trim()) || Boolean(q.filters?.length)
}

function accountsWithLogo(db: Db) {
  return db.selectFrom('accounts').leftJoin('logos', 'logos.id', 'accounts.logo_id').selectAll('accounts').select(['logos.uuid as logo_uuid', 'logos.name as logo_name'])
}

/**
 * A page size as SQL text, not a bound value: SQLite plans `limit 50` tighter than `limit ?`
 * (about 10% of the Accounts page's query). Page sizes are the code's own numbers.
 */
function pageLimit(n: number) {
  if (!Number.isSafeInteger(n) || n < 0) throw new Error(`bad page size ${n}`)
  return sql.lit(n)
}

/** A page of the whole table in one sort order: the Accounts page's usual query, compiled once. */
const wholeTablePages = preparedQueries<AccountRow>()

export async function findAccounts(db: Db, dialect: Dialect, viewer: Viewer, q: AccountQuery) {
  const sort = q.sort ?? 'container_name'
  const dir = q.dir ?? 'asc'
  if (!hasConditions(viewer, q) && q.limit !== undefined) {
    const limit = q.limit
    const page = wholeTablePages(`${sort} ${dir} ${limit}`, (db) => accountsWithLogo(db).orderBy(`accounts.${sort}`, dir).orderBy('accounts.id', dir).limit(pageLimit(limit)).offset(0))
    return page(db, [q.offset ?? 0])
  }
  let query = accountsWithLogo(db)
    .$if(hasConditions(viewer, q), (qb) => qb.where((eb) => whereQuery(eb, dialect, viewer, q)))
    .orderBy(`accounts.${sort}`, dir)
    .orderBy('accounts.id', dir)
  if (q.limit !== undefined) query = query.limit(pageLimit(q.limit)).offset(q.offset ?? 0)
  return query.execute()
}
export type AccountRow = Awaited<ReturnType<ReturnType<typeof accountsWithLogo>['execute']>>[number]

const countAll = preparedQuery((db) => db.selectFrom('accounts').select((eb) => eb.fn.countAll<number>().as('n')))

/** How many trigram candidates a capped count reads to check short words on (see countAccountsUpTo). */
const SHORT_WORD_CANDIDATES = 2000

export async function countAccounts(db: Db, dialect: Dialect, viewer: Viewer, q: AccountQuery): Promise<number> {
  return (await countAccountsUpTo(db, dialect, viewer, q)).count
}

/**
 * Counts matching accounts, stopping after `cap` of them: a broad search needs no exact
 * figure to show its first page, and counting 50,000 trigram matches takes longer than the
 * rest of the page together.
 */
export async function countAccountsUpTo(db: Db, dialect: Dialect, viewer: Viewer, q: AccountQuery, cap = Infinity): Promise<{ count: number; more: boolean }> {
  const words = searchWords(q.text)
  const capped = Number.isFinite(cap)
  const fts = dialect === 'sqlite' && !q.filters?.length && words.long.length ? visibleMatches(viewer, q, words.long) : null
  let n: number
  if (!hasConditions(viewer, q)) {
    // An Administrator's whole table: count(*) is cheap and exact.
    const [row] = await countAll(db, [])
    return { count: Number(row!.n), more: false }
  } else if (!q.text?.trim() && !q.filters?.length) {
    // A user's whole list: their assignments (which cascade with the accounts) say how many,
    // exactly and cheaply (a range of the primary key).
    const row = await db.selectFrom('user_accounts').select((eb) => eb.fn.countAll<number>().as('n')).where('user_id', '=', viewer.id).executeTakeFirstOrThrow()
    return { count: Number(row.n), more: false }
  } else if (fts) {
    // Only the text: the trigram index finds the long words' matches without reading the table.
    const limit = capped ? sql`limit ${cap + 1}` : sql``
    if (!words.short.length) {
      const { rows } = await sql<{ n: number }>`select count(*) as n from (${fts} ${limit})`.execute(db)
      n = Number(rows[0]!.n)
    } else {
      // Short words need each candidate's text: with a cap, only the first SHORT_WORD_CANDIDATES
      // candidates are read, and the count is then a lower bound ("180+").
      const examine = capped ? Math.min(cap, SHORT_WORD_CANDIDATES) : Infinity
      const shortLikes = sql.join(words.short.map((w) => sql`accounts.search_text like ${`%${escapeLike(w)}%`} escape '\\'`), sql` and `)
      const { rows } = await sql<{ candidates: number; n: number | null }>`select count(*) as candidates, sum(${shortLikes}) as n
        from (${fts} ${Number.isFinite(examine) ? sql`limit ${examine + 1}` : sql``}) as candidates join accounts on accounts.id = candidates.id`.execute(db)
      n = Number(rows[0]!.n ?? 0)
      if (Number(rows[0]!.candidates) > examine) return { count: Math.min(n, cap), more: true }
    }
  } else {
    const matching = db
      .selectFrom('accounts')
      .select('accounts.id')
      .where((eb) => whereQuery(eb, dialect, viewer, q))
      .$if(capped, (qb) => qb.limit(cap + 1))
    const row = await db.selectFrom(matching.as('matching')).select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow()
    n = Number(row.n)
  }
  return { count: Math.min(n, cap), more: n > cap }
}

/**
 * The Accounts page: one page of matching accounts with their count, stopping the count past
 * `cap` (`more`; the last page is then unknown and any page may be asked for). When only
 * words of 3+ characters narrow the table on SQLite (an Administrator's, or the accounts of a
 * user with many), one read of the trigram
 * index serves both: up to cap+1 ids, counted here, and the page fetched by them.
 */
export async function listAccountsPage(db: Db, dialect: Dialect, viewer: Viewer, query: AccountQuery, page: number, pageSize: number, cap: number) {
  const words = searchWords(query.text)
  const q = viewer.role === ADMINISTRATOR ? query : { ...query, scanAssigned: await hasFewAssigned(db, viewer.id) }
  let counted: { count: number; more: boolean } | undefined
  const matches = dialect === 'sqlite' && !q.filters?.length && words.long.length && !words.short.length ? visibleMatches(viewer, q, words.long) : null
  if (matches) {
    // The ids stay in SQLite as one JSON array: a JavaScript object per id costs more than the index read.
    const [{ n, ids }] =
      viewer.role === ADMINISTRATOR
        ? await matchingIds(String(cap), (db) => matchingIdsQuery(db, cap))(db, [ftsQuery(words.long)])
        : (await sql<{ n: number; ids: string }>`select count(*) as n, json_group_array(id) as ids from (${matches} limit ${pageLimit(cap + 1)})`.execute(db)).rows
    if (n <= cap) {
      const current = Math.min(page, Math.max(1, Math.ceil(n / pageSize)))
      const sort = q.sort ?? 'container_name'
      const dir = q.dir ?? 'asc'
      const pageOfIds = pagesOfIds(`${sort} ${dir} ${pageSize}`, (db) => pageOfIdsQuery(db, sort, dir, pageSize))
      const accounts = n ? await pageOfIds(db, [ids, (current - 1) * pageSize]) : []
      return { accounts, total: n, more: false, page: current }
    }
    counted = { count: cap, more: true }
  }
  const { count, more } = counted ?? (await countAccountsUpTo(db, dialect, viewer, q, cap))
  const current = more ? page : Math.min(page, Math.max(1, Math.ceil(count / pageSize)))
  const accounts = await findAccountsPage(db, dialect, viewer, { ...q, limit: pageSize, offset: (current - 1) * pageSize }, more)
  return { accounts, total: count, more, page: current }
}

/** An Administrator's trigram matches, up to cap+1: how many, and their ids as a JSON array (value: the FTS query). */
const matchingIds = preparedQueries<{ n: number; ids: string }>()
function matchingIdsQuery(db: Db, cap: number) {
  const text = sql<{ n: number; ids: string }>`select count(*) as n, json_group_array(id) as ids from (select rowid as id from accounts_fts where accounts_fts match ${''} limit ${pageLimit(cap + 1)})`
  return { compile: () => text.compile(db) }
}

/**
 * One page of the Accounts table; `more`: more matches than the count's cap. Few matches: the
 * trigram set, sorted. Many: SQLite
 * first reads a window of the sort order and checks the words on each row, which finds a page
 * of a common word at once. Otherwise, or when the window holds too few, it walks the sort
 * index keeping the rows in the trigram set.
 */
async function findAccountsPage(db: Db, dialect: Dialect, viewer: Viewer, q: AccountQuery & { limit: number; offset: number }, more: boolean) {
  if (dialect === 'sqlite' && more && q.text?.trim()) {
    const window = Math.max(SEARCH_WINDOW_ROWS, 100 * (q.offset + q.limit))
    if (window <= 20_000) {
      const rows = await findAccountsInWindow(db, dialect, viewer, q, window)
      if (rows.length === q.limit) return rows
    }
  }
  return findAccounts(db, dialect, viewer, { ...q, preferSortIndex: more })
}

/**
 * At most this many rows of the sort order are read for a broad search's first page; reading
 * stops at the page's last match, so a word in 5% of them costs 1,000 rows (under a millisecond),
 * and only a word missing from the whole window costs all of them (a few milliseconds).
 */
export const SEARCH_WINDOW_ROWS = 5000

async function findAccountsInWindow(db: Db, dialect: Dialect, viewer: Viewer, q: AccountQuery & { limit: number; offset: number }, window: number) {
  const sort = q.sort ?? 'container_name'
  const dir = q.dir ?? 'asc'
  const { text, ...rest } = q
  const { long, short } = searchWords(text)
  const words = [...long, ...short]
  // LIKE with an ESCAPE clause runs 6% slower over the window: only when a word needs it.
  const escaped = words.some((w) => /[\\%_]/.test(w))
  const patterns = words.map((w) => `%${escaped ? escapeLike(w) : w}%`)
  if (hasConditions(viewer, rest)) return windowPageQuery(db, dialect, viewer, rest, sort, dir, window, q.limit, patterns, escaped, q.offset).execute()
  // Only words (the usual search): compiled once per shape, as building it costs more than a
  // narrow search takes to run.
  const blanks = patterns.map(() => '')
  const page = windowPages(`${sort} ${dir} ${window} ${q.limit} ${patterns.length} ${escaped}`, (db) => windowPageQuery(db, dialect, viewer, rest, sort, dir, window, q.limit, blanks, escaped, 0))
  return page(db, [...patterns, q.offset])
}
const windowPages = preparedQueries<AccountRow>()

/**
 * The first `window` rows in sort order that pass everything but the words (narrow rows: id,
 * text and sort key), then the words on each, stopping at the page: no sort of the window.
 * Its values, in order: the conditions' own, the LIKE patterns, the offset.
 */
function windowPageQuery(db: Db, dialect: Dialect, viewer: Viewer, rest: AccountQuery, sort: SortColumn, dir: 'asc' | 'desc', window: number, limit: number, patterns: string[], escaped: boolean, offset: number) {
  const escape = escaped ? sql` escape '\\'` : sql``
  const candidates = db
    .selectFrom('accounts')
    .select(['accounts.id', 'accounts.search_text', `accounts.${sort}`])
    .$if(hasConditions(viewer, rest), (qb) => qb.where((eb) => whereQuery(eb, dialect, viewer, rest)))
    .orderBy(`accounts.${sort}`, dir)
    .orderBy('accounts.id', dir)
    .limit(pageLimit(window))
  const pageIds = db
    .selectFrom(candidates.as('candidates'))
    .select('candidates.id')
    .where(sql<SqlBool>`${sql.join(patterns.map((p) => sql`candidates.search_text like ${p}${escape}`), sql` and `)}`)
    .orderBy(sql.ref(`candidates.${sort}`), dir)
    .orderBy('candidates.id', dir)
    .limit(pageLimit(limit))
    .offset(offset)
  return accountsWithLogo(db)
    .where('accounts.id', 'in', pageIds)
    .orderBy(`accounts.${sort}`, dir)
    .orderBy('accounts.id', dir)
}

/**
 * A page of the accounts whose ids are in a JSON array (values: the array, the offset): the
 * ids sorted first, by their sort key alone, and only the page's rows read whole (a quarter
 * faster than sorting up to 1,000 whole rows).
 */
const pagesOfIds = preparedQueries<AccountRow>()
function pageOfIdsQuery(db: Db, sort: SortColumn, dir: 'asc' | 'desc', limit: number) {
  const pageIds = db
    .selectFrom('accounts')
    .select('accounts.id')
    .where(sql<SqlBool>`accounts.id in (select value from json_each(${''}))`)
    .orderBy(`accounts.${sort}`, dir)
    .orderBy('accounts.id', dir)
    .limit(pageLimit(limit))
    .offset(0)
  return accountsWithLogo(db)
    .where('accounts.id', 'in', pageIds)
    .orderBy(`accounts.${sort}`, dir)
    .orderBy('accounts.id', dir)
}

/** What an account shows outside the portal (API, CSV): every column but the internal ones. */
const EXPORTED_COLUMNS = [
  'accounts.id', 'accounts.uuid', 'accounts.container_name', 'accounts.custom_name', 'accounts.site_id', 'accounts.region',
  'accounts.licensed_apps', 'accounts.licensed_assets', 'accounts.licensed_assets_limit', 'accounts.license_utilization',
  'accounts.license_expiration_date', 'accounts.notes', 'accounts.lms_customer_id', 'accounts.sso_username', 'accounts.domains',
  'accounts.instance_url', 'accounts.contact_email', 'accounts.created_at', 'accounts.modified_at',
] as const

/** Matching accounts in id order, a batch at a time (for exports of any size). */
export async function* iterateAccountBatches(db: Db, dialect: Dialect, viewer: Viewer, q: AccountQuery, opts: { batch?: number } = {}) {
  const batch = opts.batch ?? 500
  let afterId = 0
  for (;;) {
    const query = exportedAccounts(db)
      .where('accounts.id', '>', afterId)
      .$if(hasConditions(viewer, q), (qb) => qb.where((eb) => whereQuery(eb, dialect, viewer, q)))
      .orderBy('accounts.id')
      .limit(pageLimit(batch))
    const rows = await query.execute()
    if (rows.length) yield rows
    if (rows.length < batch) return
    afterId = rows.at(-1)!.id
  }
}
function exportedAccounts(db: Db) {
  return db.selectFrom('accounts').leftJoin('logos', 'logos.id', 'accounts.logo_id').select(EXPORTED_COLUMNS).select(['logos.uuid as logo_uuid'])
}
export type ExportedAccount = Awaited<ReturnType<ReturnType<typeof exportedAccounts>['execute']>>[number]

export function findVisibleAccount(db: Db, viewer: Viewer, uuid: string) {
  return accountsWithLogo(db)
    .where('accounts.uuid', '=', uuid)
    .$if(viewer.role !== ADMINISTRATOR, (qb) => qb.where((eb) => visibleTo(eb, viewer)!))
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
        .$if(viewer.role !== ADMINISTRATOR, (qb) => qb.where((eb) => visibleTo(eb, viewer)!))
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

/**
 * The Region filter's choices: the regions of the accounts the viewer may see. An
 * Administrator's (every account's) are a scan at 100,000 accounts, so kept for a short
 * while; anyone else's come from their assigned accounts, read each time (an assignment
 * withdrawn takes their region off the list at once).
 */
let regionsCache: { at: number; db: Db; regions: Array<{ region: string | null }> } | undefined
export async function distinctRegions(db: Db, viewer: Viewer): Promise<Array<{ region: string | null }>> {
  const query = db.selectFrom('accounts').select('accounts.region').distinct().where('accounts.region', 'is not', null).orderBy('accounts.region').limit(200)
  if (viewer.role !== ADMINISTRATOR) return query.where((eb) => visibleTo(eb, viewer)!).execute()
  if (regionsCache && regionsCache.db === db && Date.now() - regionsCache.at < 30_000) return regionsCache.regions
  const regions = await query.execute()
  regionsCache = { at: Date.now(), db, regions }
  return regions
}

// --- API and CSV ---

/** The API's query: AccountQuery plus a group of which at least one must hold (a wildcard over chosen fields). */
export interface ApiAccountQuery extends AccountQuery {
  anyOf?: Filter[]
}

function apiWhere(eb: Eb, dialect: Dialect, viewer: Viewer, q: ApiAccountQuery): Expression<SqlBool> {
  const base = whereQuery(eb, dialect, viewer, q)
  return q.anyOf?.length ? eb.and([base, eb.or(q.anyOf.map((f) => filterCondition(eb, f)))]) : base
}

/**
 * Streams matching accounts in id (creation) order, skipping `offset` and stopping after
 * `limit`, one batch per query (keyset pagination after the first batch): never all rows in memory.
 */
export async function* iterateApiAccounts(
  db: Db,
  dialect: Dialect,
  viewer: Viewer,
  q: ApiAccountQuery,
  page: { offset?: number; limit?: number; batch?: number } = {},
): AsyncGenerator<AccountRow> {
  const batch = page.batch ?? 1000
  let remaining = page.limit ?? Number.POSITIVE_INFINITY
  let afterId: number | null = null
  while (remaining > 0) {
    const size = Math.min(batch, remaining)
    const after: number | null = afterId
    let query = accountsWithLogo(db)
      .where((eb): Expression<SqlBool> => (after === null ? apiWhere(eb, dialect, viewer, q) : eb.and([apiWhere(eb, dialect, viewer, q), eb('accounts.id', '>', after)])))
      .orderBy('accounts.id')
      .limit(size)
    if (after === null && page.offset) query = query.offset(page.offset)
    const rows: AccountRow[] = await query.execute()
    yield* rows
    remaining -= rows.length
    if (rows.length < size) return
    afterId = rows.at(-1)!.id
  }
}

/** Inserts many accounts with a few multi-row statements (use inside a transaction). */
export async function insertAccounts(db: Db, accounts: Array<Omit<NewAccount, 'search_text' | 'license_utilization'>>, chunk = 100): Promise<number> {
  let inserted = 0
  for (let i = 0; i < accounts.length; i += chunk) {
    const values = accounts.slice(i, i + chunk).map((account) => {
      const full = {
        ...account,
        custom_name: account.custom_name ?? null,
        site_id: account.site_id ?? null,
        licensed_apps: account.licensed_apps ?? '',
        notes: account.notes ?? '',
        licensed_assets: account.licensed_assets ?? 0,
        licensed_assets_limit: account.licensed_assets_limit ?? 0,
      }
      return { ...full, license_utilization: utilizationOf(full.licensed_assets, full.licensed_assets_limit), search_text: searchTextOf(full) }
    })
    await db.insertInto('accounts').values(values).execute()
    inserted += values.length
  }
  return inserted
}

/** A user as the assignment endpoints need them (id, role), by uuid. */
export function findUserRefByUuid(db: Db, userUuid: string) {
  return db.selectFrom('users').select(['id', 'uuid', 'username', 'role']).where('uuid', '=', userUuid).executeTakeFirst()
}

/** Accounts by uuid regardless of visibility (Administrators' writes), in chunks. */
export async function findAccountIdsByUuid(db: Db, uuids: string[]): Promise<Array<{ id: number; uuid: string }>> {
  return findVisibleAccountIds(db, { id: 0, role: ADMINISTRATOR }, uuids)
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

/** PostgreSQL: holds a row lock on the user until the transaction ends (serialises their imports). SQLite's writer lock does this already. */
export async function lockUserRow(db: Db, dialect: Dialect, userId: number): Promise<void> {
  if (dialect === 'postgres') await db.selectFrom('users').select('id').where('id', '=', userId).forUpdate().execute()
}

// --- Instances ---

/** The distinct instance URLs (null: none set) of the accounts a user can see. */
export async function distinctInstanceUrls(db: Db, viewer: Viewer): Promise<Array<string | null>> {
  const rows = await db
    .selectFrom('accounts')
    .select('instance_url')
    .distinct()
    .$if(viewer.role !== ADMINISTRATOR, (qb) => qb.where((eb) => visibleTo(eb, viewer)!))
    .execute()
  return rows.map((r) => r.instance_url)
}

/** The ids of every account matching a query (bulk actions on "all N matching"). */
export function matchingAccountIds(db: Db, dialect: Dialect, viewer: Viewer, q: AccountQuery) {
  return db
    .selectFrom('accounts')
    .select('accounts.id')
    .$if(hasConditions(viewer, q), (qb) => qb.where((eb) => whereQuery(eb, dialect, viewer, q)))
    .execute()
}
