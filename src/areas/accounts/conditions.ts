import { type Expression, type ExpressionBuilder, type SqlBool, sql } from 'kysely'
import type { Database } from '../../db/schema.ts'
import type { Dialect } from '../../db/index.ts'
import { ADMINISTRATOR } from '../../lib/roles.ts'
import { escapeLike } from '../../db/like.ts'
import { type AssignedLookup, type Viewer, visibleTo } from './visibility.ts'

// What a search of the accounts asks (words, filters, order), as SQL conditions.

type Eb = ExpressionBuilder<Database, 'accounts'>

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

/** The API's query: AccountQuery plus a group of which at least one must hold (a wildcard over chosen fields). */
export interface ApiAccountQuery extends AccountQuery {
  anyOf?: Filter[]
}

/** How a query runs, as the search plans choose it (search-plans.ts): not what it asks. */
export interface PlanFlags {
  /**
   * A user's assignments (see AssignedLookup), `set` unless told: with `set` their rows are
   * read and the words checked on each; with `lookup` the indexes drive, as for an Administrator.
   */
  assigned?: AssignedLookup
  /** Page through the sort index instead of sorting all matches (many matches). */
  sortIndex?: boolean
}

/**
 * Words of the Search box: every word must appear. Those of 3+ characters can use the trigram
 * index; shorter ones ("17", "us") are checked on the rows the others found.
 */
export function searchWords(text: string | undefined): { long: string[]; short: string[] } {
  const words = (text ?? '').trim().toLowerCase().split(/\s+/).filter(Boolean).slice(0, 8)
  const isLong = (w: string) => [...w].length >= 3
  return { long: words.filter(isLong), short: words.filter((w) => !isLong(w)) }
}

/** The FTS5 query for the long words: each a quoted trigram phrase, all required. */
export function ftsQuery(long: string[]): string {
  return long.map((w) => `"${w.replace(/"/g, '""')}"`).join(' AND ')
}

export function likeWord(word: string): Expression<SqlBool> {
  return sql<SqlBool>`accounts.search_text like ${`%${escapeLike(word)}%`} escape '\\'`
}

/**
 * The text's conditions. On SQLite the trigram index finds the long words' matches; with many
 * matches (`sortIndex`), `+` keeps SQLite from driving the query by that set, so it walks
 * the sort index and stops after a page. PostgreSQL uses LIKE on the lower-cased column, which
 * its pg_trgm GIN index serves.
 */
function textConditions(dialect: Dialect, text: string | undefined, sortIndex: boolean): Expression<SqlBool>[] {
  const { long, short } = searchWords(text)
  if (dialect !== 'sqlite' || !long.length) return [...long, ...short].map(likeWord)
  const fts = sql<SqlBool>`${sql.raw(sortIndex ? '+' : '')}accounts.id in (select rowid from accounts_fts where accounts_fts match ${ftsQuery(long)})`
  return [fts, ...short.map(likeWord)]
}

const DAY = 86_400_000

export function filterCondition(eb: Eb, f: Filter): Expression<SqlBool> {
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
export function whereQuery(eb: Eb, dialect: Dialect, viewer: Viewer, q: AccountQuery, plan: PlanFlags = {}): Expression<SqlBool> {
  const assigned = plan.assigned ?? 'set'
  const visible = visibleTo(eb, viewer, assigned)
  const conditions: Expression<SqlBool>[] = visible ? [visible] : []
  const scanRows = visible !== null && assigned === 'set'
  const { long, short } = searchWords(q.text)
  conditions.push(...(scanRows ? [...long, ...short].map(likeWord) : textConditions(dialect, q.text, plan.sortIndex ?? false)))
  if (q.filters?.length) {
    const parts = q.filters.map((f) => filterCondition(eb, f))
    conditions.push(q.filterType === 'or' ? eb.or(parts) : eb.and(parts))
  }
  return conditions.length === 1 ? conditions[0]! : eb.and(conditions)
}

/** whereQuery and, for the API, the `anyOf` group. */
export function apiWhere(eb: Eb, dialect: Dialect, viewer: Viewer, q: ApiAccountQuery, plan: PlanFlags = {}): Expression<SqlBool> {
  const base = whereQuery(eb, dialect, viewer, q, plan)
  return q.anyOf?.length ? eb.and([base, eb.or(q.anyOf.map((f) => filterCondition(eb, f)))]) : base
}

export function hasConditions(viewer: Viewer, q: AccountQuery): boolean {
  return viewer.role !== ADMINISTRATOR || Boolean(q.text?.trim()) || Boolean(q.filters?.length)
}

/**
 * A page size as SQL text, not a bound value: SQLite plans `limit 50` tighter than `limit ?`
 * (about 10% of the Accounts page's query). Page sizes are the code's own numbers.
 */
export function pageLimit(n: number) {
  if (!Number.isSafeInteger(n) || n < 0) throw new Error(`bad page size ${n}`)
  return sql.lit(n)
}
