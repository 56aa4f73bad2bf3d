import type { Kysely } from 'kysely'
import type { Database, User } from '../../db/schema.ts'
import type { Origin } from '../../lib/actor.ts'
import { audit } from '../audit/service.ts'

// What the session plugin (src/plugins/session.ts) uses of the auth area: the session rows,
// the user an Administrator assists, and the record of an assist the session ended.

export { deleteSession, endAssist, findSessionWithUser, findUserById, insertSession, setSessionFlash, touchSession } from './repository.ts'

/** Audits that assisting ended by itself (time limit, user gone or disabled, role lost); the Administrator acted. */
export function recordAssistEnded(db: Kysely<Database>, from: Origin, admin: User, assisted: { type: 'user'; id: string | number; name?: string }, fields: Record<string, string | number>): Promise<void> {
  return audit(db, from, { action: 'user.assist_stop', actor: admin, target: assisted, fields })
}
