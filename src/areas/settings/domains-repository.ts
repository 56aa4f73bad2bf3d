import { PostgresAdapter, sql, type Kysely } from 'kysely'
import type { Database } from '../../db/schema.ts'

type Db = Kysely<Database>

// Approved domains (the approved_domains table), and the users whose usernames are at one.

/** LIKE pattern matching usernames at exactly this domain ('!' escapes). */
function usernamePattern(domain: string): string {
  return `%@${domain.replace(/[!%_]/g, '!$&')}`
}

/** How many users (enabled or not) have a username at this domain. */
export async function countUsersAtDomain(db: Db, domain: string): Promise<number> {
  const row = await db
    .selectFrom('users')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .where(sql<boolean>`username like ${usernamePattern(domain)} escape '!'`)
    .executeTakeFirstOrThrow()
  return Number(row.n)
}

export function listDomainRows(db: Db) {
  return db.selectFrom('approved_domains').select(['domain', 'created_at']).orderBy('domain').execute()
}

export async function domainExists(db: Db, domain: string): Promise<boolean> {
  return Boolean(await db.selectFrom('approved_domains').select('domain').where('domain', '=', domain).executeTakeFirst())
}

/** Inserts the domain unless it is there already; returns whether it was inserted. */
export async function insertDomain(db: Db, domain: string): Promise<boolean> {
  const res = await db
    .insertInto('approved_domains')
    .values({ domain, created_at: Date.now() })
    .onConflict((oc) => oc.column('domain').doNothing())
    .executeTakeFirst()
  return Number(res.numInsertedOrUpdatedRows ?? 0) === 1
}

/**
 * Deletes the domain unless a user's username is at it or it is the last one, checked and
 * deleted in one statement (after locking the domains on PostgreSQL, so that two removals at
 * once cannot leave none). Call inside a transaction; returns whether it was deleted.
 */
export async function deleteUnusedDomain(trx: Db, domain: string): Promise<boolean> {
  if (trx.getExecutor().adapter instanceof PostgresAdapter) await trx.selectFrom('approved_domains').select('domain').forUpdate().execute()
  const res = await trx
    .deleteFrom('approved_domains')
    .where('domain', '=', domain)
    .where((eb) => eb.not(eb.exists(eb.selectFrom('users').select(sql.lit(1).as('one')).where(sql<boolean>`username like ${usernamePattern(domain)} escape '!'`))))
    .where((eb) => eb(eb.selectFrom('approved_domains as others').select(eb.fn.countAll().as('n')), '>', 1))
    .executeTakeFirst()
  return Number(res.numDeletedRows) === 1
}
