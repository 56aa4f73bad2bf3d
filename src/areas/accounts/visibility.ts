import type { Expression, ExpressionBuilder, Kysely, SqlBool } from 'kysely'
import type { Database } from '../../db/schema.ts'
import { ADMINISTRATOR } from '../../lib/roles.ts'

/** Who is asking: Administrators see every account, everyone else their assigned ones. */
export interface Viewer {
  id: number
  role: number
}

/**
 * How a user's assignments narrow a query: `set`, the query driven by them (the set of their
 * account ids); `lookup`, each candidate row looked up in them (the primary key on user_id,
 * account_id), so that a user with 20,000 accounts needs no such set per query.
 */
export type AssignedLookup = 'set' | 'lookup'

/** The accounts a user may see: null for an Administrator (every account), else the condition. */
export function visibleTo(eb: ExpressionBuilder<Database, 'accounts'>, viewer: Viewer, lookup: AssignedLookup = 'set'): Expression<SqlBool> | null {
  if (viewer.role === ADMINISTRATOR) return null
  const assigned = eb.selectFrom('user_accounts').select('user_accounts.account_id').where('user_accounts.user_id', '=', viewer.id)
  if (lookup === 'set') return eb('accounts.id', 'in', assigned)
  return eb.exists(assigned.whereRef('user_accounts.account_id', '=', 'accounts.id'))
}

/** Up to this many assigned accounts a user's rows are read (`set`); past it the indexes drive (`lookup`). */
export const ASSIGNED_SCAN_LIMIT = 2000

/** How a user's assignments best narrow their queries, by how many they have; undefined for an Administrator. */
export async function assignedLookupFor(db: Kysely<Database>, viewer: Viewer): Promise<AssignedLookup | undefined> {
  if (viewer.role === ADMINISTRATOR) return undefined
  return (await assignedTotal(db, viewer.id)) <= ASSIGNED_SCAN_LIMIT ? 'set' : 'lookup'
}

/** How many accounts are assigned to a user, kept beside the assignments (migration 0013). */
export async function assignedTotal(db: Kysely<Database>, userId: number): Promise<number> {
  const row = await db.selectFrom('assigned_totals').select('accounts').where('user_id', '=', userId).executeTakeFirst()
  return row?.accounts ?? 0
}
