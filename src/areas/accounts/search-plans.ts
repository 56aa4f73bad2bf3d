import { type Kysely, type SelectQueryBuilder, type SqlBool, sql } from 'kysely'
import type { Database } from '../../db/schema.ts'
import type { Dialect } from '../../db/index.ts'
import { ADMINISTRATOR } from '../../lib/roles.ts'
import { escapeLike } from '../../db/like.ts'
import { type AccountQuery, type PlanFlags, type SortColumn, ftsQuery, hasConditions, likeWord, pageLimit, searchWords, whereQuery } from './conditions.ts'
import { accountsWithLogo } from './repository.ts'
import { type Viewer, assignedLookupFor, assignedTotal } from './visibility.ts'

// How the Accounts page finds a page of matches and their count (listAccountsPage). The
// plans in the order they are tried; the first that applies and finds enough answers:
//
//   plan          when                                                  how
//   whole table   an Administrator, no words and no filters             a page of the sort index; count(*)
//                                                                       (PostgreSQL past 10x the cap: up to the cap)
//   trigram ids   SQLite, words of 3+ characters only, no filters, an   the index's ids (up to cap+1) as one JSON array:
//                 Administrator or `lookup`, at most `cap` matches      counted, sorted by their sort key, one page read
//   window        SQLite, words, more than `cap` matches, the window    the first rows of the sort order, the words checked
//                 (SEARCH_WINDOW_ROWS or 100 pages) at most 20,000 rows on each until a page is found
//                 and holding a full page
//   sort index    more than `cap` matches                               walks the sort index keeping the matches (`+` keeps
//                                                                       SQLite from driving by the trigram set)
//   matches       otherwise                                             the matches (trigram set, or LIKE), sorted
//
// And for a user other than an Administrator, the assignments (PlanFlags.assigned): up to
// ASSIGNED_SCAN_LIMIT, `set` (their rows read, the words checked on each); more, `lookup`
// (each candidate of the indexes looked up in the assignments).

type Db = Kysely<Database>
type Page = AccountQuery & { limit: number; offset: number }

/**
 * The rowids of the trigram index's matches for the long words that the viewer may see (a
 * user with many assigned accounts: each match looked up in the assignments), or null when
 * the index should not drive (a user with few: their rows are read instead).
 */
function visibleMatches(viewer: Viewer, plan: PlanFlags, long: string[]) {
  const match = sql`select rowid as id from accounts_fts where accounts_fts match ${ftsQuery(long)}`
  if (viewer.role === ADMINISTRATOR) return match
  if (plan.assigned !== 'lookup') return null
  return sql`${match} and exists (select 1 from user_accounts where user_accounts.user_id = ${viewer.id} and user_accounts.account_id = accounts_fts.rowid)`
}

export async function findAccounts(db: Db, dialect: Dialect, viewer: Viewer, q: AccountQuery, plan: PlanFlags = {}) {
  const sort = q.sort ?? 'container_name'
  const dir = q.dir ?? 'asc'
  let query = accountsWithLogo(db)
    .$if(hasConditions(viewer, q), (qb) => qb.where((eb) => whereQuery(eb, dialect, viewer, q, plan)))
    .orderBy(`accounts.${sort}`, dir)
    .orderBy('accounts.id', dir)
  if (q.limit !== undefined) query = query.limit(pageLimit(q.limit)).offset(q.offset ?? 0)
  return query.execute()
}

/** PostgreSQL's estimate of the accounts (-1 before its first statistics). */
async function estimatedAccounts(db: Db): Promise<number> {
  const { rows } = await sql<{ n: number }>`select reltuples as n from pg_class where oid = 'accounts'::regclass`.execute(db)
  return Number(rows[0]?.n ?? -1)
}

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
async function countAccountsUpTo(db: Db, dialect: Dialect, viewer: Viewer, q: AccountQuery, cap = Infinity, plan: PlanFlags = {}): Promise<{ count: number; more: boolean }> {
  const words = searchWords(q.text)
  const capped = Number.isFinite(cap)
  const fts = dialect === 'sqlite' && !q.filters?.length && words.long.length ? visibleMatches(viewer, plan, words.long) : null
  let n: number
  if (!hasConditions(viewer, q) && !(capped && dialect === 'postgres' && (await estimatedAccounts(db)) > 10 * cap)) {
    // An Administrator's whole table: count(*) is cheap and exact, but on PostgreSQL it reads
    // every row (17 ms at 100,000): where its statistics say there are ten times the cap, it
    // counts up to the cap instead, as a broad search does ("1,000+").
    const row = await db.selectFrom('accounts').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow()
    return { count: Number(row.n), more: false }
  } else if (!hasConditions(viewer, q)) {
    const row = await db.selectFrom(db.selectFrom('accounts').select('id').limit(cap + 1).as('first')).select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow()
    n = Number(row.n)
  } else if (!q.text?.trim() && !q.filters?.length) {
    // A user's whole list: as many as are assigned to them.
    return { count: await assignedTotal(db, viewer.id), more: false }
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
      const shortLikes = sql.join(words.short.map(likeWord), sql` and `)
      const { rows } = await sql<{ candidates: number; n: number | null }>`select count(*) as candidates, sum(${shortLikes}) as n
        from (${fts} ${Number.isFinite(examine) ? sql`limit ${examine + 1}` : sql``}) as candidates join accounts on accounts.id = candidates.id`.execute(db)
      n = Number(rows[0]!.n ?? 0)
      if (Number(rows[0]!.candidates) > examine) return { count: Math.min(n, cap), more: true }
    }
  } else {
    const matching = db
      .selectFrom('accounts')
      .select('accounts.id')
      .where((eb) => whereQuery(eb, dialect, viewer, q, plan))
      .$if(capped, (qb) => qb.limit(cap + 1))
    const row = await db.selectFrom(matching.as('matching')).select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow()
    n = Number(row.n)
  }
  return { count: Math.min(n, cap), more: n > cap }
}

/**
 * The Accounts page: one page of matching accounts with their count, stopping the count past
 * `cap` (`more`; the last page is then unknown and any page may be asked for). The plans are
 * the table at the top of this file.
 */
export async function listAccountsPage(db: Db, dialect: Dialect, viewer: Viewer, q: AccountQuery, page: number, pageSize: number, cap: number) {
  const words = searchWords(q.text)
  const plan: PlanFlags = { assigned: await assignedLookupFor(db, viewer) }
  let counted: { count: number; more: boolean } | undefined
  const matches = dialect === 'sqlite' && !q.filters?.length && words.long.length && !words.short.length ? visibleMatches(viewer, plan, words.long) : null
  if (matches) {
    // Trigram ids. They stay in SQLite as one JSON array: a JavaScript object per id costs more than the index read.
    const { n, ids } = (await sql<{ n: number; ids: string }>`select count(*) as n, json_group_array(id) as ids from (${matches} limit ${pageLimit(cap + 1)})`.execute(db)).rows[0]!
    if (n <= cap) {
      const current = Math.min(page, Math.max(1, Math.ceil(n / pageSize)))
      const sort = q.sort ?? 'container_name'
      const dir = q.dir ?? 'asc'
      const accounts = n ? await pageOfIdsQuery(db, sort, dir, pageSize, ids, (current - 1) * pageSize).execute() : []
      return { accounts, total: n, more: false, page: current }
    }
    counted = { count: cap, more: true }
  }
  const { count, more } = counted ?? (await countAccountsUpTo(db, dialect, viewer, q, cap, plan))
  const current = more ? page : Math.min(page, Math.max(1, Math.ceil(count / pageSize)))
  const accounts = await findAccountsPage(db, dialect, viewer, { ...q, limit: pageSize, offset: (current - 1) * pageSize }, more, plan)
  return { accounts, total: count, more, page: current }
}

/** One page of the Accounts table by the window, sort index or matches plan; `more`: more matches than the count's cap. */
async function findAccountsPage(db: Db, dialect: Dialect, viewer: Viewer, q: Page, more: boolean, plan: PlanFlags) {
  if (dialect === 'sqlite' && more && q.text?.trim()) {
    const window = Math.max(SEARCH_WINDOW_ROWS, 100 * (q.offset + q.limit))
    if (window <= 20_000) {
      const rows = await findAccountsInWindow(db, dialect, viewer, q, window, plan)
      if (rows.length === q.limit) return rows
    }
  }
  return findAccounts(db, dialect, viewer, q, { ...plan, sortIndex: more })
}

/**
 * At most this many rows of the sort order are read for a broad search's first page; reading
 * stops at the page's last match, so a word in 5% of them costs 1,000 rows (under a millisecond),
 * and only a word missing from the whole window costs all of them (a few milliseconds).
 */
export const SEARCH_WINDOW_ROWS = 5000

async function findAccountsInWindow(db: Db, dialect: Dialect, viewer: Viewer, q: Page, window: number, plan: PlanFlags) {
  const sort = q.sort ?? 'container_name'
  const dir = q.dir ?? 'asc'
  const { text, ...rest } = q
  const { long, short } = searchWords(text)
  const words = [...long, ...short]
  // LIKE with an ESCAPE clause runs 6% slower over the window: only when a word needs it.
  const escaped = words.some((w) => /[\\%_]/.test(w))
  const patterns = words.map((w) => `%${escaped ? escapeLike(w) : w}%`)
  return windowPageQuery(db, dialect, viewer, rest, plan, sort, dir, window, q.limit, patterns, escaped, q.offset).execute()
}

/**
 * The first `window` rows in sort order that pass everything but the words (narrow rows: id,
 * text and sort key), then the words on each, stopping at the page: no sort of the window.
 */
function windowPageQuery(db: Db, dialect: Dialect, viewer: Viewer, rest: AccountQuery, plan: PlanFlags, sort: SortColumn, dir: 'asc' | 'desc', window: number, limit: number, patterns: string[], escaped: boolean, offset: number) {
  const escape = escaped ? sql` escape '\\'` : sql``
  const candidates = db
    .selectFrom('accounts')
    .select(['accounts.id', 'accounts.search_text', `accounts.${sort}`])
    .$if(hasConditions(viewer, rest), (qb) => qb.where((eb) => whereQuery(eb, dialect, viewer, rest, plan)))
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
  return rowsOfPage(db, pageIds, sort, dir)
}

/** The page's accounts read whole, in the page's order, once their ids are known. */
function rowsOfPage(db: Db, pageIds: SelectQueryBuilder<any, any, { id: number }>, sort: SortColumn, dir: 'asc' | 'desc') {
  return accountsWithLogo(db).where('accounts.id', 'in', pageIds).orderBy(`accounts.${sort}`, dir).orderBy('accounts.id', dir)
}

/**
 * A page of the accounts whose ids are in a JSON array: the ids sorted first, by their sort
 * key alone, and only the page's rows read whole (a quarter faster than sorting up to 1,000
 * whole rows).
 */
function pageOfIdsQuery(db: Db, sort: SortColumn, dir: 'asc' | 'desc', limit: number, ids: string, offset: number) {
  const pageIds = db
    .selectFrom('accounts')
    .select('accounts.id')
    .where(sql<SqlBool>`accounts.id in (select value from json_each(${ids}))`)
    .orderBy(`accounts.${sort}`, dir)
    .orderBy('accounts.id', dir)
    .limit(pageLimit(limit))
    .offset(offset)
  return rowsOfPage(db, pageIds, sort, dir)
}
