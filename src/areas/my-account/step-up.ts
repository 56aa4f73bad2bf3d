import type { Kysely } from 'kysely'
import type { Database, User } from '../../db/schema.ts'
import type { Actor } from '../../lib/actor.ts'
import { ForbiddenError, ValidationError } from '../../lib/errors.ts'
import { verifyPassword } from '../../lib/passwords.ts'
import { audit } from '../audit/service.ts'
import { findUserById, updateUser } from '../auth/repository.ts'
import { recordFailedSignIn } from '../auth/service.ts'

// Step-up: before a change of their password or of a second factor, the user proves again
// that they know the current password. One check for every such change, page and API.

export const ASSISTING_MESSAGE = 'While assisting a user you cannot change their password, e-mail address, two-factor authentication or API keys.'

/** While assisting (in the browser or by X-Impersonate), the user's credentials stay theirs to change. */
export function refuseWhileAssisting(actor: Actor): void {
  if (actor.assistedBy) throw new ForbiddenError(ASSISTING_MESSAGE)
}

export const WRONG_CURRENT_PASSWORD = 'The current password is not correct.'

/** The current password was not given or not right: the form's current_password field. */
export class StepUpError extends ValidationError {
  constructor(message: string) {
    super({ current_password: message }, message)
  }
}

/** Too many wrong passwords: the account is locked (sign-in too) until the lock ends. */
export class StepUpLockedError extends StepUpError {
  constructor(readonly retryAfterSeconds: number) {
    const minutes = Math.max(1, Math.ceil(retryAfterSeconds / 60))
    super(`Too many wrong passwords: your account is locked for ${minutes} ${minutes === 1 ? 'minute' : 'minutes'}. Try again then.`)
  }
}

/**
 * Checks the signed-in user's current password before a change named by the audit `action`
 * (recorded as a failure when the check fails). Refused while assisting (the Administrator
 * does not know it) and while the account is locked. A wrong password counts toward the
 * lockout exactly like a failed sign-in, so this is no unlimited guessing oracle; the right
 * one clears the count, as a sign-in does. Returns the user as stored now.
 */
export async function requireCurrentPassword(db: Kysely<Database>, actor: Actor, currentPassword: string, action: string, missingMessage = 'Enter your current password.'): Promise<User> {
  const target = { type: 'user', id: actor.user.uuid, name: actor.user.username }
  if (actor.assistedBy) {
    await audit(db, actor, { action, outcome: 'failure', target, fields: { reason: 'assisting' } })
    refuseWhileAssisting(actor)
  }
  const user = (await findUserById(db, actor.user.id)) ?? actor.user
  if (!currentPassword) {
    await audit(db, actor, { action, outcome: 'failure', target, fields: { reason: 'no current password' } })
    throw new StepUpError(missingMessage)
  }
  const valid = await verifyPassword(user.password_hash, currentPassword)
  const locked = user.locked_until !== null && user.locked_until > Date.now()
  if (!valid || locked) {
    await recordFailedSignIn(db, actor, user, { countsTowardLock: !valid, reason: locked ? 'locked' : 'wrong current password', action })
    const lockedUntil = (await findUserById(db, user.id))?.locked_until ?? null
    const now = Date.now()
    if (lockedUntil !== null && lockedUntil > now) throw new StepUpLockedError(Math.ceil((lockedUntil - now) / 1000))
    throw new StepUpError(WRONG_CURRENT_PASSWORD)
  }
  if (user.failed_login_count > 0) await updateUser(db, user.id, { failed_login_count: 0, locked_until: null })
  return user
}
