import type { FastifyRequest } from 'fastify'
import { z } from 'zod'
import { hashPassword, verifyPassword } from '../../lib/passwords.ts'
import { checkPassword } from '../../lib/password-policy.ts'
import { ValidationError } from '../../lib/errors.ts'
import { decryptSecret, encryptSecret, newTotpSecret, totpStep } from '../../lib/otp.ts'
import { deleteUserSessions, updateUser, voidOneTimeCodes } from '../auth/repository.ts'
import { audit } from '../audit/service.ts'
import * as tfRepo from '../two-factor/repository.ts'
import * as tfa from '../two-factor/service.ts'

// The rules of My Account: a user's own profile, password and second factors.

export const ASSISTING_MESSAGE = 'While assisting a user you cannot change their password, e-mail address, two-factor authentication or API keys.'

const profileSchema = z.object({
  name: z.string().trim().min(1, 'Enter your name.').max(200, 'The name can be at most 200 characters.'),
  email: z.union([z.literal(''), z.email('Enter a valid e-mail address.').max(254)]),
  current_password: z.string().max(1000).default(''),
})

function firstErrors(error: z.ZodError): Record<string, string> {
  const out: Record<string, string> = {}
  for (const issue of error.issues) out[String(issue.path[0] ?? 'form')] ??= issue.message
  return out
}

/** Name and e-mail. Changing the e-mail needs the current password and tells the old address. */
export async function updateProfile(request: FastifyRequest, input: unknown): Promise<void> {
  const app = request.server
  const user = request.auth!.user
  const parsed = profileSchema.safeParse(input)
  if (!parsed.success) throw new ValidationError(firstErrors(parsed.error))
  const email = parsed.data.email.trim().toLowerCase() || null
  const emailChanged = email !== (user.email?.toLowerCase() ?? null)
  if (emailChanged && request.auth!.assistedBy) throw new ValidationError({ email: ASSISTING_MESSAGE })
  if (emailChanged && !(await verifyPassword(user.password_hash, parsed.data.current_password))) {
    throw new ValidationError({ current_password: 'Enter your current password to change your e-mail address.' })
  }
  await app.db.transaction().execute(async (trx) => {
    await updateUser(trx, user.id, { name: parsed.data.name, email, updated_at: Date.now() })
    // Without an e-mail address there is no backup e-mail for codes.
    if (!email) await trx.updateTable('two_factor').set({ email_enabled: 0 }).where('user_id', '=', user.id).execute()
    await audit(trx, request, { action: 'user.profile_update', target: { type: 'user', id: user.uuid, name: user.username }, fields: { email_changed: emailChanged } })
  })
  if (emailChanged) {
    await app.messenger.send({
      kind: 'email',
      to: user.email ?? user.username,
      subject: 'Your MSSP Portal e-mail address was changed',
      text: `Hello ${parsed.data.name},\n\nThe e-mail address of ${user.username} on the MSSP Portal was changed to ${email ?? '(none)'}.\nIf you did not do this, contact your MSSP Portal Administrator at once.\n`,
    })
  }
}

/** A new password under the self-service policy; ends the user's other sessions and sends a notice. */
export async function changePassword(request: FastifyRequest, input: { current_password?: unknown; new_password?: unknown }): Promise<void> {
  const app = request.server
  const { user, session } = request.auth!
  const current = typeof input.current_password === 'string' ? input.current_password : ''
  const next = typeof input.new_password === 'string' ? input.new_password : ''
  if (!(await verifyPassword(user.password_hash, current))) {
    await audit(app.db, request, { action: 'user.password_change', outcome: 'failure', target: { type: 'user', id: user.uuid, name: user.username }, fields: { reason: 'wrong current password' } })
    throw new ValidationError({ current_password: 'The current password is not correct.' })
  }
  const policy = checkPassword(next, 'self-service')
  if (policy) throw new ValidationError({ new_password: policy })
  if (next === current) throw new ValidationError({ new_password: 'Choose a password different from the current one.' })
  const hash = await hashPassword(next)
  const now = Date.now()
  await app.db.transaction().execute(async (trx) => {
    await updateUser(trx, user.id, { password_hash: hash, password_changed_at: now, updated_at: now })
    await deleteUserSessions(trx, user.id, session?.id)
    // A reset link mailed before the change must not undo it.
    await voidOneTimeCodes(trx, 'password_reset', user.id, now)
    await audit(trx, request, { action: 'user.password_change', target: { type: 'user', id: user.uuid, name: user.username } })
  })
  await app.messenger.send({
    kind: 'email',
    to: user.email ?? user.username,
    subject: 'Your MSSP Portal password was changed',
    text: `Hello ${user.name},\n\nThe password of ${user.username} on the MSSP Portal was changed, and every other session was signed out.\nIf you did not do this, reset your password with Forgot Password and contact your Administrator.\n`,
  })
}

export const PHONE_PATTERN = /^\+[1-9]\d{7,14}$/

export function normalisePhone(input: string): string {
  const trimmed = input.trim()
  const digits = trimmed.replace(/[\s().-]/g, '')
  return digits.startsWith('00') ? `+${digits.slice(2)}` : digits
}

const setupBinding = (userId: number) => `setup:${userId}`

/** Two-Factor Setup, step 1: the mobile phone number; a code is sent to it. */
export async function startPhoneSetup(request: FastifyRequest, phoneInput: string): Promise<string> {
  const app = request.server
  const user = request.auth!.user
  if (!app.messenger.hasTransport('sms')) throw new ValidationError({ phone: 'Text messages are not configured on this portal. Use an authenticator app instead.' })
  const phone = normalisePhone(phoneInput)
  if (!PHONE_PATTERN.test(phone)) throw new ValidationError({ phone: 'Enter the mobile phone number with its country code, for example +1 555 123 4567.' })
  await tfRepo.upsertTwoFactor(app.db, user.id, { pending_phone: phone })
  await tfa.sendCode(app, { boundTo: setupBinding(user.id), channel: 'sms', to: phone, userId: user.id, purpose: '2fa_setup' })
  return phone
}

export async function resendSetupCode(request: FastifyRequest): Promise<void> {
  const app = request.server
  const user = request.auth!.user
  const tf = await tfRepo.findTwoFactor(app.db, user.id)
  if (!tf?.pending_phone) throw new ValidationError({ code: 'Start again: enter your mobile phone number.' })
  await tfa.sendCode(app, { boundTo: setupBinding(user.id), channel: 'sms', to: tf.pending_phone, userId: user.id, purpose: '2fa_setup' })
}

/** Two-Factor Setup, step 2: the code from the text message. Returns new recovery codes, if issued. */
export async function confirmPhoneSetup(request: FastifyRequest, code: string): Promise<string[] | null> {
  const app = request.server
  const user = request.auth!.user
  const tf = await tfRepo.findTwoFactor(app.db, user.id)
  if (!tf?.pending_phone) throw new ValidationError({ code: 'Start again: enter your mobile phone number.' })
  if (!(await tfa.checkSentCode(app.db, setupBinding(user.id), code.trim()))) throw new ValidationError({ code: 'That code is not valid or has expired.' })
  await tfRepo.upsertTwoFactor(app.db, user.id, { sms_phone: tf.pending_phone, pending_phone: null })
  await audit(app.db, request, { action: 'user.two_factor_enable', target: { type: 'user', id: user.uuid, name: user.username }, fields: { method: 'sms' } })
  return tfa.isConfigured(tf) ? null : tfa.issueRecoveryCodes(app.db, user.id)
}

/** Authenticator app, step 1: a new secret, kept encrypted until a code confirms it. */
export async function startTotpSetup(request: FastifyRequest): Promise<string> {
  const app = request.server
  const secret = newTotpSecret()
  await tfRepo.upsertTwoFactor(app.db, request.auth!.user.id, { pending_totp_secret: encryptSecret(app.keys.secrets, secret) })
  return secret
}

export async function pendingTotpSecret(request: FastifyRequest): Promise<string | null> {
  const tf = await tfRepo.findTwoFactor(request.server.db, request.auth!.user.id)
  return tf?.pending_totp_secret ? decryptSecret(request.server.keys.secrets, tf.pending_totp_secret) : null
}

export async function confirmTotpSetup(request: FastifyRequest, code: string): Promise<string[] | null> {
  const app = request.server
  const user = request.auth!.user
  const tf = await tfRepo.findTwoFactor(app.db, user.id)
  if (!tf?.pending_totp_secret) throw new ValidationError({ code: 'Start again: scan a new QR code.' })
  const step = totpStep(decryptSecret(app.keys.secrets, tf.pending_totp_secret), code.trim())
  if (step === null) throw new ValidationError({ code: 'That code is not valid. Check the time on your phone and try the current code.' })
  await tfRepo.upsertTwoFactor(app.db, user.id, { totp_secret: tf.pending_totp_secret, pending_totp_secret: null, totp_last_step: step })
  await audit(app.db, request, { action: 'user.two_factor_enable', target: { type: 'user', id: user.uuid, name: user.username }, fields: { method: 'authenticator app' } })
  return tfa.isConfigured(tf) ? null : tfa.issueRecoveryCodes(app.db, user.id)
}

export async function setBackupEmail(request: FastifyRequest, enabled: boolean): Promise<void> {
  const app = request.server
  const user = request.auth!.user
  const tf = await tfRepo.findTwoFactor(app.db, user.id)
  if (!tfa.isConfigured(tf)) throw new ValidationError({ send_backup_email: 'Set up two-factor authentication first.' })
  if (enabled && !user.email) throw new ValidationError({ send_backup_email: 'Add an e-mail address to your account first.' })
  await tfRepo.upsertTwoFactor(app.db, user.id, { email_enabled: enabled ? 1 : 0 })
  await audit(app.db, request, { action: 'user.two_factor_backup_email', target: { type: 'user', id: user.uuid, name: user.username }, fields: { enabled } })
}

/** Disable Two-Factor: the phone number and every setting are deleted (needs the current password). */
export async function disableTwoFactor(request: FastifyRequest, currentPassword: string): Promise<void> {
  const app = request.server
  const user = request.auth!.user
  if (!(await verifyPassword(user.password_hash, currentPassword))) throw new ValidationError({ current_password: 'The current password is not correct.' })
  await tfRepo.deleteTwoFactor(app.db, user.id)
  await audit(app.db, request, { action: 'user.two_factor_disable', target: { type: 'user', id: user.uuid, name: user.username } })
}

export async function regenerateRecoveryCodes(request: FastifyRequest, currentPassword: string): Promise<string[]> {
  const app = request.server
  const user = request.auth!.user
  if (!(await verifyPassword(user.password_hash, currentPassword))) throw new ValidationError({ current_password: 'The current password is not correct.' })
  if (!tfa.isConfigured(await tfRepo.findTwoFactor(app.db, user.id))) throw new ValidationError({ current_password: 'Set up two-factor authentication first.' })
  const codes = await tfa.issueRecoveryCodes(app.db, user.id)
  await audit(app.db, request, { action: 'user.recovery_codes_regenerate', target: { type: 'user', id: user.uuid, name: user.username } })
  return codes
}
