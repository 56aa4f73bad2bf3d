import type { Kysely, Transaction } from 'kysely'
import type { Database, TwoFactor, User } from '../../db/schema.ts'
import type { Actor } from '../../lib/actor.ts'
import type { Portal } from '../../types.ts'
import { CODE_TTL_MS, decryptSecret, normaliseRecoveryCode, numericCode, recoveryCode, totpStep } from '../../lib/otp.ts'
import { consumeOneTimeCode, insertOneTimeCode } from '../auth/repository.ts'
import { audit, type AuditInput } from '../audit/service.ts'
import { sha256, uuid } from '../../lib/tokens.ts'
import * as repo from './repository.ts'
import { databaseRateLimitStore } from '../../ops/rate-limit-store.ts'

// The rules of second factors, shared by the sign-in code step and My Account's setup.

export const MAX_RESENDS = 3
export const RESEND_INTERVAL_MS = 30_000
export const MAX_CODE_ATTEMPTS = 5
export const RECOVERY_CODE_COUNT = 10
/** A pending authenticator secret can be confirmed this long after it was made (it is shown only once, when made). */
export const PENDING_TOTP_TTL_MS = CODE_TTL_MS

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

/** Text messages per user per hour, whatever they are for (every password sign-in of an SMS user sends one). */
export const MAX_TEXTS_PER_HOUR = 5
const HOUR_MS = 3_600_000

export class TextLimitError extends ResendLimitError {
  constructor() {
    super(null)
    this.message = 'Text messages cannot be sent to your phone right now: too many codes were sent in the last hour.'
  }
}

interface TextCounter {
  hit(key: string, timeWindow: number, max: number): Promise<{ current: number; ttl: number }>
  read(key: string, callback: (err: Error | null, result?: { current: number }) => void): void
}
// The counters live in the database (rate_limits), so that the cap holds across processes.
const textCounters = new WeakMap<Kysely<Database>, TextCounter>()
function textCounter(db: Kysely<Database>): TextCounter {
  let counter = textCounters.get(db)
  if (!counter) {
    const Store = databaseRateLimitStore(db, { namespace: 'sms' }) as unknown as new () => TextCounter
    counter = new Store()
    textCounters.set(db, counter)
  }
  return counter
}

/** Whether a text to the user was refused by the cap this hour (the sign-in page then offers the other ways). */
export function textLimitReached(db: Kysely<Database>, userId: number): Promise<boolean> {
  return new Promise((resolve, reject) => textCounter(db).read(`user:${userId}`, (err, r) => (err ? reject(err) : resolve((r?.current ?? 0) > MAX_TEXTS_PER_HOUR))))
}

/**
 * Sends a fresh code bound to `boundTo` (a sign-in attempt's session id, or a setup),
 * voiding the previous one. Resends are limited: MAX_RESENDS after the first, RESEND_INTERVAL_MS apart;
 * texts also MAX_TEXTS_PER_HOUR per user.
 */
export async function sendCode(app: Portal, opts: { boundTo: string; channel: CodeChannel; to: string; userId: number; purpose: string }): Promise<void> {
  const now = Date.now()
  // Every send counts, first ones included: at most 1 + MAX_RESENDS an hour per attempt or
  // setup, RESEND_INTERVAL_MS apart (the state is in the database, so it holds across processes).
  const previous = (await repo.codesBoundTo(app.db, opts.boundTo)).filter((c) => now - c.created_at < 3_600_000)
  if (previous.length > MAX_RESENDS) throw new ResendLimitError(null)
  const last = previous[0]
  if (last && now - last.created_at < RESEND_INTERVAL_MS) throw new ResendLimitError(Math.ceil((RESEND_INTERVAL_MS - (now - last.created_at)) / 1000))
  if (opts.channel === 'sms' && (await textCounter(app.db).hit(`user:${opts.userId}`, HOUR_MS, MAX_TEXTS_PER_HOUR)).current > MAX_TEXTS_PER_HOUR) throw new TextLimitError()
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
export async function checkTotp(app: Pick<Portal, 'db' | 'keys'>, tf: TwoFactor, code: string): Promise<boolean> {
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
export async function startSignInChallenge(app: Portal, user: User, tf: TwoFactor, sessionId: string): Promise<void> {
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

/** The pending authenticator secret, if one was made within PENDING_TOTP_TTL_MS. */
export function freshPendingTotp(tf: TwoFactor | undefined, now = Date.now()): string | null {
  if (!tf?.pending_totp_secret || tf.pending_totp_created_at === null) return null
  return now - tf.pending_totp_created_at < PENDING_TOTP_TTL_MS ? tf.pending_totp_secret : null
}

/**
 * Every change of a user's second factors: `write` and its audit event in one transaction,
 * then a notice by e-mail saying what changed (`notice`, a sentence without its full stop).
 */
export async function changeTwoFactor(
  app: Portal,
  actor: Actor,
  user: User,
  change: { audit: Omit<AuditInput, 'target' | 'outcome'>; notice: string; by?: 'administrator' },
  write: (trx: Transaction<Database>) => Promise<void>,
): Promise<void> {
  await app.db.transaction().execute(async (trx) => {
    await write(trx)
    await audit(trx, actor, { ...change.audit, target: { type: 'user', id: user.uuid, name: user.username } })
  })
  await app.messenger.send({
    kind: 'email',
    to: user.email ?? user.username,
    subject: 'Two-factor authentication was changed on your MSSP Portal account',
    text:
      `Hello ${user.name},\n\n${change.notice} for ${user.username} on the MSSP Portal.\n` +
      (change.by === 'administrator' ? 'If you did not ask for this, contact your Administrator.\n' : 'If you did not do this, reset your password with Forgot Password and contact your Administrator at once.\n'),
  })
}
