import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { Kysely } from 'kysely'
import type { Database, TwoFactor, User } from '../../db/schema.ts'
import { CODE_TTL_MS, decryptSecret, normaliseRecoveryCode, numericCode, recoveryCode, totpStep } from '../../lib/otp.ts'
import { consumeOneTimeCode, insertOneTimeCode } from '../auth/repository.ts'
import { sha256, uuid } from '../../lib/tokens.ts'
import * as repo from './repository.ts'

// The rules of second factors, shared by the sign-in code step and My Account's setup.

export const MAX_RESENDS = 3
export const RESEND_INTERVAL_MS = 30_000
export const MAX_CODE_ATTEMPTS = 5
export const RECOVERY_CODE_COUNT = 10

export type CodeChannel = 'sms' | 'email'

export function isConfigured(tf: TwoFactor | undefined): tf is TwoFactor {
  return Boolean(tf && (tf.sms_phone || tf.totp_secret))
}

/** Codes are hashed together with what they are bound to: a code works for that attempt only. */
function codeHash(boundTo: string, code: string): string {
  return sha256(`${boundTo}:${code}`)
}

export class ResendLimitError extends Error {
  constructor(readonly waitSeconds: number | null) {
    super(waitSeconds === null ? 'You have asked for too many codes. Try again in an hour.' : `Wait ${waitSeconds} seconds before asking for another code.`)
  }
}

/**
 * Sends a fresh code bound to `boundTo` (a sign-in attempt's session id, or a setup),
 * voiding the previous one. Resends are limited: MAX_RESENDS after the first, RESEND_INTERVAL_MS apart.
 */
export async function sendCode(app: FastifyInstance, opts: { boundTo: string; channel: CodeChannel; to: string; userId: number; purpose: string }): Promise<void> {
  const now = Date.now()
  // Every send counts, first ones included: at most 1 + MAX_RESENDS an hour per attempt or
  // setup, RESEND_INTERVAL_MS apart (the state is in the database, so it holds across processes).
  const previous = (await repo.codesBoundTo(app.db, opts.boundTo)).filter((c) => now - c.created_at < 3_600_000)
  if (previous.length > MAX_RESENDS) throw new ResendLimitError(null)
  const last = previous[0]
  if (last && now - last.created_at < RESEND_INTERVAL_MS) throw new ResendLimitError(Math.ceil((RESEND_INTERVAL_MS - (now - last.created_at)) / 1000))
  const code = numericCode()
  await repo.voidCodesBoundTo(app.db, opts.boundTo, now)
  const expiresAt = now + CODE_TTL_MS
  await insertOneTimeCode(app.db, { id: uuid(), purpose: opts.purpose, user_id: opts.userId, code_hash: codeHash(opts.boundTo, code), created_at: now, expires_at: expiresAt, bound_to: opts.boundTo })
  const text = `Your MSSP Portal verification code is ${code}. It expires in 10 minutes. If you did not ask for it, ignore this message.`
  await app.messenger.send(opts.channel === 'sms' ? { kind: 'sms', to: opts.to, subject: 'Verification code', text, expiresAt } : { kind: 'email', to: opts.to, subject: 'Your MSSP Portal verification code', text, expiresAt })
}

/** Checks (and uses up) a code sent for `boundTo`. */
export async function checkSentCode(db: Kysely<Database>, boundTo: string, code: string): Promise<boolean> {
  if (!/^\d{6}$/.test(code)) return false
  const now = Date.now()
  const row = await repo.findLiveBoundCode(db, boundTo, codeHash(boundTo, code), now)
  return Boolean(row && (await consumeOneTimeCode(db, row.id, now)))
}

/** An authenticator-app code for the user's confirmed secret; each 30-second step once. */
export async function checkTotp(app: FastifyInstance, tf: TwoFactor, code: string): Promise<boolean> {
  if (!tf.totp_secret) return false
  const step = totpStep(decryptSecret(app.keys.secrets, tf.totp_secret), code)
  return step !== null && (await repo.acceptTotpStep(app.db, tf.user_id, step))
}

export async function checkRecoveryCode(db: Kysely<Database>, userId: number, input: string): Promise<boolean> {
  const normalised = normaliseRecoveryCode(input)
  if (normalised.length !== 12) return false
  return repo.useRecoveryCode(db, userId, sha256(`recovery:${normalised}`), Date.now())
}

/** New recovery codes (shown once; stored hashed), replacing any the user had. */
export async function issueRecoveryCodes(db: Kysely<Database>, userId: number): Promise<string[]> {
  const codes = Array.from({ length: RECOVERY_CODE_COUNT }, recoveryCode)
  await repo.replaceRecoveryCodes(db, userId, codes.map((c) => ({ id: uuid(), code_hash: sha256(`recovery:${normaliseRecoveryCode(c)}`) })), Date.now())
  return codes
}

/** Sends the sign-in codes the user's setup calls for: by text message, if SMS is set up and can be sent. */
export async function startSignInChallenge(request: FastifyRequest, user: User, tf: TwoFactor, sessionId: string): Promise<void> {
  const app = request.server
  if (tf.sms_phone && app.messenger.hasTransport('sms')) {
    await sendCode(app, { boundTo: sessionId, channel: 'sms', to: tf.sms_phone, userId: user.id, purpose: '2fa_sign_in' })
  }
}

/** Masks a phone number for display: +1 •••• ••67. */
export function maskPhone(phone: string): string {
  // +1 numbers keep "+1"; others keep a 2-digit country code (+44, +49, ...).
  const country = phone.startsWith('+1') || phone.startsWith('+7') ? phone.slice(0, 2) : phone.slice(0, 3)
  return `${country} •••• ••${phone.slice(-2)}`
}
