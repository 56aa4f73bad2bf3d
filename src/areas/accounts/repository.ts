import { type Expression, type Kysely, type SqlBool } from 'kysely'
import type { Account, Database, NewAccount } from '../../db/schema.ts'
import type { Dialect } from '../../db/index.ts'
import { ADMINISTRATOR } from '../../lib/roles.ts'
import { appLabel, parseApps } from './licensed-apps.ts'
import { type AccountQuery, type ApiAccountQuery, apiWhere, hasConditions, pageLimit, whereQuery } from './conditions.ts'
import { type Viewer, assignedLookupFor, visibleTo } from './visibility.ts'

// The accounts' plain queries: rows in and out, their derived columns, assignments, and the
// streamed exports. Who sees what: visibility.ts; the Accounts page's search: search-plans.ts.

type Db = Kysely<Database>

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

export function accountsWithLogo(db: Db) {
  return db.selectFrom('accounts').leftJoin('logos', 'logos.id', 'accounts.logo_id').selectAll('accounts').select(['logos.uuid as logo_uuid', 'logos.name as logo_name'])
}

export type AccountRow = Awaited<ReturnType<ReturnType<typeof accountsWithLogo>['execute']>>[number]

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

type AccountToInsert = Omit<NewAccount, 'search_text' | 'license_utilization'>

/** A new account's row: its optional columns' defaults and its derived columns (search text, utilization). */
function newRow(account: AccountToInsert) {
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
}

export async function insertAccount(db: Db, account: AccountToInsert): Promise<Account> {
  return db.insertInto('accounts').values(newRow(account)).returningAll().executeTakeFirstOrThrow()
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
 * while; anyone else's are kept beside their assignments (assigned_regions, migration 0013),
 * read each time (an assignment withdrawn takes their region off the list at once).
 */
let regionsCache: { at: number; db: Db; regions: Array<{ region: string | null }> } | undefined
export async function distinctRegions(db: Db, viewer: Viewer): Promise<Array<{ region: string | null }>> {
  if (viewer.role !== ADMINISTRATOR) return db.selectFrom('assigned_regions').select('region').where('user_id', '=', viewer.id).orderBy('region').limit(200).execute()
  const query = db.selectFrom('accounts').select('accounts.region').distinct().where('accounts.region', 'is not', null).orderBy('accounts.region').limit(200)
  if (regionsCache && regionsCache.db === db && Date.now() - regionsCache.at < 30_000) return regionsCache.regions
  const regions = await query.execute()
  regionsCache = { at: Date.now(), db, regions }
  return regions
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
  // A user with many assigned accounts: walking the id order and looking each row up in the
  // assignments finds a batch sooner than reading all of them first.
  const plan = { assigned: await assignedLookupFor(db, viewer) }
  const batch = page.batch ?? 1000
  let remaining = page.limit ?? Number.POSITIVE_INFINITY
  let afterId: number | null = null
  while (remaining > 0) {
    const size = Math.min(batch, remaining)
    const after: number | null = afterId
    let query = accountsWithLogo(db)
      .where((eb): Expression<SqlBool> => (after === null ? apiWhere(eb, dialect, viewer, q, plan) : eb.and([apiWhere(eb, dialect, viewer, q, plan), eb('accounts.id', '>', after)])))
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
export async function insertAccounts(db: Db, accounts: AccountToInsert[], chunk = 100): Promise<number> {
  let inserted = 0
  for (let i = 0; i < accounts.length; i += chunk) {
    const values = accounts.slice(i, i + chunk).map(newRow)
    await db.insertInto('accounts').values(values).execute()
    inserted += values.length
  }
  return inserted
}

/** PostgreSQL: holds a row lock on the user until the transaction ends (serialises their imports). SQLite's writer lock does this already. */
export async function lockUserRow(db: Db, dialect: Dialect, userId: number): Promise<void> {
  if (dialect === 'postgres') await db.selectFrom('users').select('id').where('id', '=', userId).forUpdate().execute()
}

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
