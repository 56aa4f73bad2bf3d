import type { FastifyRequest } from 'fastify'
import type { Kysely, Transaction } from 'kysely'
import type { Database, User } from '../../db/schema.ts'
import { audit, type AuditInput } from '../audit/service.ts'
import { deleteUserSessions, updateUser, voidOneTimeCodes } from './repository.ts'
import { revokeApiKeys } from '../api/repository.ts'

// What every change of a user's password brings, whichever way it came (My Account, the
// API, a reset link): the user's other sessions end, reset links mailed before it stop
// working, it is audited, and the user is told.

export interface PasswordChange {
  /** The session that made the change stays signed in; every other one ends (all, if none). */
  keepSessionId?: string | null
  /** A reset link also ends a lockout. */
  unlock?: boolean
  /** A reset link also revokes the user's API keys (they generate new ones); audited as keys_revoked. */
  revokeApiKeys?: boolean
  /** Runs first in the same transaction (a reset link is used up there); throwing stops the change. */
  before?: (trx: Transaction<Database>) => Promise<void>
  audit: Omit<AuditInput, 'target'>
  /** How the notice names the change. */
  via: 'change' | 'reset'
}

/** Writes the new password hash with its consequences in one transaction, then mails the notice. */
export async function setNewPassword(request: FastifyRequest, user: User, passwordHash: string, change: PasswordChange): Promise<void> {
  const app = request.server
  const db: Kysely<Database> = app.db
  const now = Date.now()
  await db.transaction().execute(async (trx) => {
    await change.before?.(trx)
    await updateUser(trx, user.id, {
      password_hash: passwordHash,
      password_changed_at: now,
      updated_at: now,
      ...(change.unlock ? { failed_login_count: 0, locked_until: null } : {}),
    })
    await deleteUserSessions(trx, user.id, change.keepSessionId ?? undefined)
    // A reset link mailed before the change must not undo it.
    await voidOneTimeCodes(trx, 'password_reset', user.id, now)
    const fields = change.revokeApiKeys ? { ...change.audit.fields, keys_revoked: await revokeApiKeys(trx, user.id) } : change.audit.fields
    await audit(trx, request, { ...change.audit, ...(fields ? { fields } : {}), target: { type: 'user', id: user.uuid, name: user.username } })
  })
  const others = change.keepSessionId ? 'every other session was signed out' : 'every session was signed out'
  await app.messenger.send({
    kind: 'email',
    to: user.email ?? user.username,
    subject: 'Your MSSP Portal password was changed',
    text:
      `Hello ${user.name},\n\nThe password of ${user.username} on the MSSP Portal was ${change.via === 'reset' ? 'reset with a link sent by e-mail' : 'changed'}, ${others}, and password reset links sent before it no longer work.\n` +
      `If you did not do this, reset your password with Forgot Password and contact your Administrator.\n`,
  })
}
