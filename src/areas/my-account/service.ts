import type { FastifyRequest } from 'fastify'
import { z } from 'zod'
import type { User } from '../../db/schema.ts'
import { hashPassword } from '../../lib/passwords.ts'
import { checkPassword } from '../../lib/password-policy.ts'
import { ForbiddenError, ValidationError, fieldErrors } from '../../lib/errors.ts'
import { decryptSecret, encryptSecret, newTotpSecret, totpStep } from '../../lib/otp.ts'
import { updateUser } from '../auth/repository.ts'
import { setNewPassword } from '../auth/password-change.ts'
import { audit } from '../audit/service.ts'
import * as tfRepo from '../two-factor/repository.ts'
import * as tfa from '../two-factor/service.ts'
import { ASSISTING_MESSAGE, requireCurrentPassword } from './step-up.ts'

// The rules of My Account: a user's own profile, password and second factors.

export { ASSISTING_MESSAGE } from './step-up.ts'

const profileSchema = z.object({
  name: z.string().trim().min(1, 'Enter your name.').max(200, 'The name can be at most 200 characters.'),
  email: z.union([z.literal(''), z.email('Enter a valid e-mail address.').max(254)]),
  current_password: z.string().max(1000).default(''),
})

/** Name and e-mail. Changing the e-mail needs the current password and tells the old address. */
export async function updateProfile(request: FastifyRequest, input: unknown): Promise<void> {
  const app = request.server
  const user = request.auth!.user
  const parsed = profileSchema.safeParse(input)
  if (!parsed.success) throw new ValidationError(fieldErrors(parsed.error))
  const email = parsed.data.email.trim().toLowerCase() || null
  const emailChanged = email !== (user.email?.toLowerCase() ?? null)
  if (emailChanged && request.auth!.assistedBy) throw new ValidationError({ email: ASSISTING_MESSAGE })
  // The step-up, so that this form is no unlimited oracle for the password either.
  if (emailChanged) {
    await requireCurrentPassword(request, parsed.data.current_password, 'user.profile_update', 'Enter your current password to change your e-mail address.')
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

/**
 * A new password under the self-service policy, after the step-up (page and API alike);
 * ends the user's other sessions, voids reset links and sends a notice.
 */
export async function changePassword(request: FastifyRequest, input: { current_password?: unknown; new_password?: unknown }): Promise<void> {
  const current = typeof input.current_password === 'string' ? input.current_password : ''
  const next = typeof input.new_password === 'string' ? input.new_password : ''
  const policy = checkPassword(next, 'self-service')
  if (policy) throw new ValidationError({ new_password: policy })
  const user = await requireCurrentPassword(request, current, 'user.password_change')
  if (next === current) throw new ValidationError({ new_password: 'Choose a password different from the current one.' })
  await setNewPassword(request, user, await hashPassword(next), { keepSessionId: request.auth!.session?.id, via: 'change', audit: { action: 'user.password_change' } })
}

export const PHONE_PATTERN = /^\+[1-9]\d{7,14}$/

export function normalisePhone(input: string): string {
  const trimmed = input.trim()
  const digits = trimmed.replace(/[\s().-]/g, '')
  return digits.startsWith('00') ? `+${digits.slice(2)}` : digits
}

const setupBinding = (userId: number) => `setup:${userId}`
const target = (user: User) => ({ type: 'user', id: user.uuid, name: user.username })

// Every change of a second factor asks for the current password (requireCurrentPassword) where
// it starts: the phone number (its code then confirms it), the authenticator app's new
// secret (its code then confirms it), backup e-mail, Disable and new recovery codes.

/** Two-Factor Setup, step 1: the mobile phone number and the current password; a code is sent to it. */
export async function startPhoneSetup(request: FastifyRequest, phoneInput: string, currentPassword: string): Promise<string> {
  const app = request.server
  if (!app.messenger.hasTransport('sms')) throw new ValidationError({ phone: 'Text messages are not configured on this portal. Use an authenticator app instead.' })
  const phone = normalisePhone(phoneInput)
  if (!PHONE_PATTERN.test(phone)) throw new ValidationError({ phone: 'Enter the mobile phone number with its country code, for example +1 555 123 4567.' })
  const user = await requireCurrentPassword(request, currentPassword, 'user.two_factor_enable')
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
  if (request.auth!.assistedBy) throw new ForbiddenError(ASSISTING_MESSAGE)
  const tf = await tfRepo.findTwoFactor(app.db, user.id)
  if (!tf?.pending_phone) throw new ValidationError({ code: 'Start again: enter your mobile phone number.' })
  if (!(await tfa.checkSentCode(app.db, setupBinding(user.id), code.trim()))) {
    await audit(app.db, request, { action: 'user.two_factor_enable', outcome: 'failure', target: target(user), fields: { method: 'sms', reason: 'wrong code' } })
    throw new ValidationError({ code: 'That code is not valid or has expired.' })
  }
  const phone = tf.pending_phone
  const notice = tf.sms_phone ? `Codes by text message now go to ${tfa.maskPhone(phone)} instead of ${tfa.maskPhone(tf.sms_phone)}` : `Codes by text message to ${tfa.maskPhone(phone)} were turned on`
  let codes: string[] | null = null
  await tfa.changeTwoFactor(request, user, { audit: { action: 'user.two_factor_enable', fields: { method: 'sms', replaced: Boolean(tf.sms_phone) } }, notice }, async (trx) => {
    await tfRepo.upsertTwoFactor(trx, user.id, { sms_phone: phone, pending_phone: null })
    if (!tfa.isConfigured(tf)) codes = await tfa.issueRecoveryCodes(trx, user.id)
  })
  return codes
}

/** Authenticator app, step 1 (a POST, after the current password): a new secret, kept encrypted until a code confirms it. */
export async function startTotpSetup(request: FastifyRequest, currentPassword: string): Promise<string> {
  const app = request.server
  const user = await requireCurrentPassword(request, currentPassword, 'user.two_factor_enable')
  const secret = newTotpSecret()
  await tfRepo.upsertTwoFactor(app.db, user.id, { pending_totp_secret: encryptSecret(app.keys.secrets, secret), pending_totp_created_at: Date.now() })
  return secret
}

/** The secret made by startTotpSetup while it is fresh (reading it changes nothing), or null. */
export async function pendingTotpSecret(request: FastifyRequest): Promise<string | null> {
  const pending = tfa.freshPendingTotp(await tfRepo.findTwoFactor(request.server.db, request.auth!.user.id))
  return pending ? decryptSecret(request.server.keys.secrets, pending) : null
}

export async function confirmTotpSetup(request: FastifyRequest, code: string): Promise<string[] | null> {
  const app = request.server
  const user = request.auth!.user
  if (request.auth!.assistedBy) throw new ForbiddenError(ASSISTING_MESSAGE)
  const tf = await tfRepo.findTwoFactor(app.db, user.id)
  const pending = tfa.freshPendingTotp(tf)
  if (!tf || !pending) throw new ValidationError({ code: 'Start again: enter your current password for a new QR code.' })
  const step = totpStep(decryptSecret(app.keys.secrets, pending), code.trim())
  if (step === null) {
    await audit(app.db, request, { action: 'user.two_factor_enable', outcome: 'failure', target: target(user), fields: { method: 'authenticator app', reason: 'wrong code' } })
    throw new ValidationError({ code: 'That code is not valid. Check the time on your phone and try the current code.' })
  }
  let codes: string[] | null = null
  const notice = tf.totp_secret ? 'Your authenticator app was replaced: codes from the previous one no longer work' : 'An authenticator app was added'
  await tfa.changeTwoFactor(request, user, { audit: { action: 'user.two_factor_enable', fields: { method: 'authenticator app', replaced: Boolean(tf.totp_secret) } }, notice }, async (trx) => {
    await tfRepo.upsertTwoFactor(trx, user.id, { totp_secret: pending, pending_totp_secret: null, pending_totp_created_at: null, totp_last_step: step })
    if (!tfa.isConfigured(tf)) codes = await tfa.issueRecoveryCodes(trx, user.id)
  })
  return codes
}

/** Send backup email on or off (needs the current password). */
export async function setBackupEmail(request: FastifyRequest, enabled: boolean, currentPassword: string): Promise<void> {
  const app = request.server
  const tf = await tfRepo.findTwoFactor(app.db, request.auth!.user.id)
  if (!tfa.isConfigured(tf)) throw new ValidationError({ send_backup_email: 'Set up two-factor authentication first.' })
  if (enabled && !request.auth!.user.email) throw new ValidationError({ send_backup_email: 'Add an e-mail address to your account first.' })
  const user = await requireCurrentPassword(request, currentPassword, 'user.two_factor_backup_email')
  if ((tf.email_enabled === 1) === enabled) return
  await tfa.changeTwoFactor(request, user, { audit: { action: 'user.two_factor_backup_email', fields: { enabled } }, notice: `Backup e-mail codes were turned ${enabled ? 'on' : 'off'}` }, (trx) =>
    tfRepo.upsertTwoFactor(trx, user.id, { email_enabled: enabled ? 1 : 0 }),
  )
}

/** Disable Two-Factor: the phone number and every setting are deleted (needs the current password). */
export async function disableTwoFactor(request: FastifyRequest, currentPassword: string): Promise<void> {
  const app = request.server
  const user = await requireCurrentPassword(request, currentPassword, 'user.two_factor_disable')
  if (!(await tfRepo.findTwoFactor(app.db, user.id))) return
  await tfa.changeTwoFactor(request, user, { audit: { action: 'user.two_factor_disable' }, notice: 'Two-factor authentication was turned off: signing in needs only the password' }, (trx) =>
    tfRepo.deleteTwoFactor(trx, user.id),
  )
}

export async function regenerateRecoveryCodes(request: FastifyRequest, currentPassword: string): Promise<string[]> {
  const app = request.server
  if (!tfa.isConfigured(await tfRepo.findTwoFactor(app.db, request.auth!.user.id))) throw new ValidationError({ current_password: 'Set up two-factor authentication first.' })
  const user = await requireCurrentPassword(request, currentPassword, 'user.recovery_codes_regenerate')
  let codes: string[] = []
  await tfa.changeTwoFactor(request, user, { audit: { action: 'user.recovery_codes_regenerate' }, notice: 'New recovery codes were generated: the previous ones no longer work' }, async (trx) => {
    codes = await tfa.issueRecoveryCodes(trx, user.id)
  })
  return codes
}

export interface ApiTwoFactorChanges {
  sms_enabled?: boolean
  email_enabled?: boolean
  sms_phone?: string
}

/**
 * `PUT /users/{own id}/two-factor`: text-message codes off, backup e-mail on or off. Checked
 * whole before the step-up, so a refused call changes nothing.
 */
export async function updateTwoFactorFromApi(request: FastifyRequest, changes: ApiTwoFactorChanges, currentPassword: string): Promise<void> {
  const app = request.server
  const tf = await tfRepo.findTwoFactor(app.db, request.auth!.user.id)
  const { sms_enabled, email_enabled, sms_phone } = changes
  if (sms_enabled === true && !tf?.sms_phone) throw new ValidationError({ sms_enabled: 'Verify a phone number first (send-verification, then verify-code).' })
  if (sms_phone && tf?.sms_phone && normalisePhone(sms_phone) !== tf.sms_phone) throw new ValidationError({ sms_phone: 'A new phone number must be verified first (send-verification, then verify-code).' })
  const smsOff = sms_enabled === false && Boolean(tf?.sms_phone)
  // Without another factor, turning SMS off turns two-factor authentication off.
  const allOff = smsOff && !tf?.totp_secret
  const configuredAfter = tfa.isConfigured(tf) && !allOff
  if (email_enabled === true && !configuredAfter) throw new ValidationError({ email_enabled: 'Set up two-factor authentication first.' })
  if (email_enabled === true && !request.auth!.user.email) throw new ValidationError({ email_enabled: 'Add an e-mail address to your account first.' })
  const emailChange = email_enabled !== undefined && configuredAfter && (tf!.email_enabled === 1) !== email_enabled
  const user = await requireCurrentPassword(request, currentPassword, smsOff ? 'user.two_factor_disable' : 'user.two_factor_backup_email')
  if (smsOff) {
    const notice = allOff ? 'Two-factor authentication was turned off: signing in needs only the password' : 'Codes by text message were turned off'
    await tfa.changeTwoFactor(request, user, { audit: { action: 'user.two_factor_disable', fields: { method: 'sms' } }, notice }, (trx) =>
      allOff ? tfRepo.deleteTwoFactor(trx, user.id) : tfRepo.upsertTwoFactor(trx, user.id, { sms_phone: null }),
    )
  }
  if (emailChange) {
    await tfa.changeTwoFactor(request, user, { audit: { action: 'user.two_factor_backup_email', fields: { enabled: email_enabled } }, notice: `Backup e-mail codes were turned ${email_enabled ? 'on' : 'off'}` }, (trx) =>
      tfRepo.upsertTwoFactor(trx, user.id, { email_enabled: email_enabled ? 1 : 0 }),
    )
  }
}
