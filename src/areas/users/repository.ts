import { type Kysely, sql } from 'kysely'
import type { Dialect } from '../../db/index.ts'
import type { Database, User } from '../../db/schema.ts'
import { ADMINISTRATOR } from '../../lib/roles.ts'
import { escapeLike } from '../../db/like.ts'

type Db = Kysely<Database>

export const USER_SORTABLE = ['username', 'name', 'role', 'last_login_at', 'last_failed_login_at', 'failed_login_total'] as const
export type UserSort = (typeof USER_SORTABLE)[number]

/** The users table: each user with 2FA and API-key facts, searched, sorted and paged. */
export function listUsers(db: Db, q: { text?: string; sort?: UserSort; dir?: 'asc' | 'desc'; limit: number; offset: number }) {
  let query = db
    .selectFrom('users')
    .leftJoin('two_factor', 'two_factor.user_id', 'users.id')
    .leftJoin('api_keys', 'api_keys.user_id', 'users.id')
    .selectAll('users')
    .select([
      sql<number>`case when two_factor.sms_phone is not null or two_factor.totp_secret is not null then 1 else 0 end`.as('has_2fa'),
      'api_keys.last_used_at as api_key_last_used_at',
      'api_keys.created_at as api_key_created_at',
    ])
  const text = q.text?.trim().toLowerCase()
  if (text) {
    const like = `%${escapeLike(text)}%`
    query = query.where((eb) => eb.or([sql<boolean>`lower(users.username) like ${like} escape '\\'`, sql<boolean>`lower(users.name) like ${like} escape '\\'`, sql<boolean>`lower(coalesce(users.email, '')) like ${like} escape '\\'`]))
  }
  return query.orderBy(`users.${q.sort ?? 'username'}`, q.dir ?? 'asc').orderBy('users.id').limit(q.limit).offset(q.offset).execute()
}
export type UserRow = Awaited<ReturnType<typeof listUsers>>[number]

export async function countUsersMatching(db: Db, text?: string): Promise<number> {
  let query = db.selectFrom('users').select((eb) => eb.fn.countAll<number>().as('n'))
  const t = text?.trim().toLowerCase()
  if (t) {
    const like = `%${escapeLike(t)}%`
    query = query.where((eb) => eb.or([sql<boolean>`lower(users.username) like ${like} escape '\\'`, sql<boolean>`lower(users.name) like ${like} escape '\\'`, sql<boolean>`lower(coalesce(users.email, '')) like ${like} escape '\\'`]))
  }
  return Number((await query.executeTakeFirstOrThrow()).n)
}

export function findUserByUuid(db: Db, uuid: string): Promise<User | undefined> {
  return db.selectFrom('users').selectAll().where('uuid', '=', uuid).executeTakeFirst()
}

/** The accounts assigned to a user, for the Accounts tab (names, not just ids). */
export function assignedAccounts(db: Db, userId: number) {
  return db
    .selectFrom('user_accounts')
    .innerJoin('accounts', 'accounts.id', 'user_accounts.account_id')
    .select(['accounts.id', 'accounts.uuid', 'accounts.container_name', 'accounts.custom_name', 'accounts.site_id'])
    .where('user_accounts.user_id', '=', userId)
    .orderBy('accounts.container_name')
    .execute()
}

export function accountsByUuids(db: Db, uuids: string[]) {
  if (uuids.length === 0) return Promise.resolve([])
  return db.selectFrom('accounts').select(['id', 'uuid', 'container_name', 'custom_name', 'site_id']).where('uuid', 'in', uuids.slice(0, 2000)).orderBy('container_name').execute()
}

/** Other enabled users who can receive a deleted user's objects. */
export function successorCandidates(db: Db, excludeUserId: number) {
  return db.selectFrom('users').select(['id', 'uuid', 'username', 'name', 'role']).where('id', '!=', excludeUserId).where('enabled', '=', 1).orderBy('username').execute()
}

export async function approvedDomains(db: Db): Promise<string[]> {
  return (await db.selectFrom('approved_domains').select('domain').orderBy('domain').execute()).map((r) => r.domain)
}

/** Moves or removes what a deleted user owned (the guide's table, applied to the portal), then deletes them. */
export async function deleteUserWithTransfer(db: Db, userId: number, successorId: number): Promise<{ accounts: number; logos: number; savedSearches: number }> {
  const accounts = await db.updateTable('accounts').set({ created_by: successorId }).where('created_by', '=', userId).executeTakeFirst()
  const logos = await db.updateTable('logos').set({ created_by: successorId }).where('created_by', '=', userId).executeTakeFirst()
  const saved = await db.deleteFrom('saved_searches').where('user_id', '=', userId).executeTakeFirst()
  // Sessions, API keys, 2FA, recovery codes, assignments and codes cascade; the name history
  // and audit events keep the user's name and lose the link (ON DELETE SET NULL).
  await db.deleteFrom('users').where('id', '=', userId).execute()
  return { accounts: Number(accounts.numUpdatedRows), logos: Number(logos.numUpdatedRows), savedSearches: Number(saved.numDeletedRows) }
}

// --- API ---

/** Every user with what the API's user object shows: 2FA and the last use of their API keys. */
export function listUsersForApi(db: Db) {
  return db
    .selectFrom('users')
    .leftJoin('two_factor', 'two_factor.user_id', 'users.id')
    .leftJoin('api_keys', 'api_keys.user_id', 'users.id')
    .selectAll('users')
    .select(['two_factor.sms_phone as tf_sms_phone', 'two_factor.email_enabled as tf_email_enabled', 'api_keys.last_used_at as api_key_last_used_at'])
    .orderBy('users.id')
    .execute()
}

/** The enabled Administrators, and those of them who may sign in with a password (the portal needs one of each). */
export async function countAdministrators(db: Db): Promise<{ enabled: number; withPassword: number }> {
  const row = await db
    .selectFrom('users')
    .select((eb) => [eb.fn.countAll<number>().as('enabled'), eb.fn.sum<number>('password_permitted').as('with_password')])
    .where('role', '=', ADMINISTRATOR)
    .where('enabled', '=', 1)
    .executeTakeFirstOrThrow()
  return { enabled: Number(row.enabled), withPassword: Number(row.with_password ?? 0) }
}

/**
 * Serialises, until the transaction ends, the changes that can take an enabled Administrator
 * away, so that the rule checked after such a change sees every other one committed.
 * PostgreSQL: a transaction-scoped advisory lock, one per schema (READ COMMITTED then gives each
 * later statement the state the previous holder committed). Simpler than `for update` on the
 * Administrators' rows (which misses rows that become Administrators meanwhile) and than
 * SERIALIZABLE (which needs a retry loop). SQLite: nothing to take: the portal has one
 * connection, on which Kysely runs one transaction at a time, and SQLite one writer.
 */
export async function lockAdministrators(db: Db, dialect: Dialect): Promise<void> {
  if (dialect === 'postgres') await sql`select pg_advisory_xact_lock(hashtext(current_schema() || '.portal administrators'))`.execute(db)
}

/** Whether the user is still disabled, read inside the transaction that deletes them. */
export async function isDisabled(db: Db, userId: number): Promise<boolean> {
  const row = await db.selectFrom('users').select('enabled').where('id', '=', userId).executeTakeFirst()
  return row?.enabled === 0
}
