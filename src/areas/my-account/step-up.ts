import type { FastifyReply, FastifyRequest } from 'fastify'
import type { User } from '../../db/schema.ts'
import { ForbiddenError, HttpError, ValidationError } from '../../lib/errors.ts'
import { verifyPassword } from '../../lib/passwords.ts'
import { audit } from '../audit/service.ts'
import { findUserById, updateUser } from '../auth/repository.ts'
import { recordFailedSignIn } from '../auth/service.ts'

// Step-up: before a change of their password or of a second factor, the user proves again
// that they know the current password. One check for every such change, page and API.

export const ASSISTING_MESSAGE = 'While assisting a user you cannot change their password, e-mail address, two-factor authentication or API keys.'

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
export async function requireCurrentPassword(request: FastifyRequest, currentPassword: string, action: string, missingMessage = 'Enter your current password.'): Promise<User> {
  const auth = request.auth!
  const target = { type: 'user', id: auth.user.uuid, name: auth.user.username }
  if (auth.assistedBy) {
    await audit(request.server.db, request, { action, outcome: 'failure', target, fields: { reason: 'assisting' } })
    throw new ForbiddenError(ASSISTING_MESSAGE)
  }
  const { db } = request.server
  const user = (await findUserById(db, auth.user.id)) ?? auth.user
  if (!currentPassword) {
    await audit(db, request, { action, outcome: 'failure', target, fields: { reason: 'no current password' } })
    throw new StepUpError(missingMessage)
  }
  const valid = await verifyPassword(user.password_hash, currentPassword)
  const locked = user.locked_until !== null && user.locked_until > Date.now()
  if (!valid || locked) {
    await recordFailedSignIn(request, user, { countsTowardLock: !valid, reason: locked ? 'locked' : 'wrong current password', action })
    const lockedUntil = (await findUserById(db, user.id))?.locked_until ?? null
    const now = Date.now()
    if (lockedUntil !== null && lockedUntil > now) throw new StepUpLockedError(Math.ceil((lockedUntil - now) / 1000))
    throw new StepUpError(WRONG_CURRENT_PASSWORD)
  }
  if (user.failed_login_count > 0) await updateUser(db, user.id, { failed_login_count: 0, locked_until: null })
  return user
}

/**
 * The API's answer to a refused change: 429 with Retry-After while locked, 400 with the
 * message for any other invalid input (a missing or wrong current password included).
 */
export function apiError(reply: FastifyReply) {
  return (err: unknown): never => {
    if (err instanceof StepUpLockedError) {
      reply.header('Retry-After', String(err.retryAfterSeconds))
      throw new HttpError(429, err.message)
    }
    if (err instanceof ValidationError) throw new HttpError(400, Object.values(err.fieldErrors)[0] ?? err.message)
    throw err
  }
}
