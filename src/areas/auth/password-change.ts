import type { Kysely } from 'kysely'
import type { Database, User } from '../../db/schema.ts'
import type { Actor, Origin } from '../../lib/actor.ts'
import type { Portal } from '../../types.ts'
import { audit, type AuditInput } from '../audit/service.ts'
import { deleteUserSessions, updateUser, voidOneTimeCodes } from './repository.ts'
import { revokeApiKeys } from '../api/repository.ts'

// What every change of a user's password brings, whichever way it came (My Account, the
// API, a reset link, an Administrator): the user's other sessions end, reset links mailed
// before it stop working, it is audited, and the user is told.

export interface PasswordChange {
  /** The session that made the change stays signed in; every other one ends (all, if none). */
  keepSessionId?: string | null
  /** A reset link (or an Administrator setting the password) also ends a lockout. */
  unlock?: boolean
  /** A reset link also revokes the user's API keys (they generate new ones); audited as keys_revoked. */
  revokeApiKeys?: boolean
  /** Runs first in the same transaction (a reset link is used up there); throwing stops the change. */
  before?: (trx: Kysely<Database>) => Promise<void>
  /** The event to record; none when the caller records the change in its own (Edit User's user.update). */
  audit?: Omit<AuditInput, 'target'>
  /** How the notice names the change. */
  via: 'change' | 'reset' | 'administrator'
}

/** Writes the new password hash with its consequences in one transaction, then mails the notice. */
export async function setNewPassword(portal: Portal, by: Actor | Origin, user: User, passwordHash: string, change: PasswordChange): Promise<void> {
  await portal.db.transaction().execute((trx) => writeNewPassword(trx, by, user, passwordHash, change))
  await sendPasswordNotice(portal, user, change)
}

/** setNewPassword's writes, inside the caller's transaction (which then calls sendPasswordNotice once it commits). */
export async function writeNewPassword(trx: Kysely<Database>, by: Actor | Origin, user: User, passwordHash: string, change: PasswordChange): Promise<void> {
  const now = Date.now()
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
  const keysRevoked = change.revokeApiKeys ? await revokeApiKeys(trx, user.id) : undefined
  if (change.audit) {
    const fields = keysRevoked !== undefined ? { ...change.audit.fields, keys_revoked: keysRevoked } : change.audit.fields
    await audit(trx, by, { ...change.audit, ...(fields ? { fields } : {}), target: { type: 'user', id: user.uuid, name: user.username } })
  }
}

const HOW = { change: 'changed', reset: 'reset with a link sent by e-mail', administrator: 'set by an Administrator' } as const

/** Tells the user their password changed (after the change has committed). */
export async function sendPasswordNotice(portal: Pick<Portal, 'messenger'>, user: User, change: Pick<PasswordChange, 'keepSessionId' | 'via'>): Promise<void> {
  const others = change.keepSessionId ? 'every other session was signed out' : 'every session was signed out'
  await portal.messenger.send({
    kind: 'email',
    to: user.email ?? user.username,
    subject: 'Your MSSP Portal password was changed',
    text:
      `Hello ${user.name},\n\nThe password of ${user.username} on the MSSP Portal was ${HOW[change.via]}, ${others}, and password reset links sent before it no longer work.\n` +
      (change.via === 'administrator'
        ? `If you did not ask for this, contact your Administrator.\n`
        : `If you did not do this, reset your password with Forgot Password and contact your Administrator.\n`),
  })
}
