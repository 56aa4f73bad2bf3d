import type { Expression, ExpressionBuilder, SqlBool } from 'kysely'
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
