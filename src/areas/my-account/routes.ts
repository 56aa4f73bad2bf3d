import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify'
import { z } from 'zod'
import { ValidationError } from '../../lib/errors.ts'
import { totpUri } from '../../lib/otp.ts'
import { actorOf, flash, isHtmx, redirect } from '../../plugins/session.ts'
import { generateApiKeys } from '../api/service.ts'
import { hasApiKeys, lastApiKeyUse } from '../api/repository.ts'
import { countUnusedRecoveryCodes, findTwoFactor } from '../two-factor/repository.ts'
import { ResendLimitError, isConfigured, maskPhone } from '../two-factor/service.ts'
import * as service from './service.ts'

// A missing or malformed field is empty: the service answers as for any wrong input.
const field = z.string().catch('')
const passwordForm = z.object({ current_password: field })
const profileForm = z.object({ name: field, email: field, current_password: field })
const newPasswordForm = z.object({ current_password: field, new_password: field })
const phoneForm = z.object({ phone: field, current_password: field })
const codeForm = z.object({ code: field })
const backupEmailForm = z.object({ send_backup_email: field, current_password: field })
const accountQuery = z.object({ setup: field })

// My Account (every role): profile, password, two-factor authentication, own API keys.
// Setup routes stay reachable when the require-2FA setting sends a user here first.
const routes: FastifyPluginAsync = async (app) => {
  const setup = { config: { access: 'two-factor-setup' as const } }

  // While assisting, the user's password, e-mail, 2FA and API keys cannot be changed.
  app.addHook('preHandler', async (request) => {
    if (request.method !== 'GET' && request.auth && request.url !== '/my-account/profile') service.refuseWhileAssisting(actorOf(request))
  })

  async function renderAccount(request: FastifyRequest, reply: FastifyReply, extra: Record<string, unknown> = {}, status?: number) {
    const user = request.auth!.user
    const tf = await findTwoFactor(app.db, user.id)
    return reply.render('my-account/index', {
      title: 'My Account',
      tab: 'account',
      values: { name: user.name, email: user.email ?? '' },
      configured: isConfigured(tf),
      phone: tf?.sms_phone ? maskPhone(tf.sms_phone) : null,
      totp: Boolean(tf?.totp_secret),
      backupEmail: tf?.email_enabled === 1,
      recoveryLeft: isConfigured(tf) ? await countUnusedRecoveryCodes(app.db, user.id) : 0,
      setupRequired: accountQuery.parse(request.query ?? {}).setup === 'required',
      ...extra,
    }, { status })
  }

  async function done(request: FastifyRequest, reply: FastifyReply, message: string) {
    await flash(request, message)
    if (isHtmx(request)) {
      reply.header('HX-Refresh', 'true')
      return reply.code(204).send()
    }
    return redirect(request, reply, '/my-account')
  }

  app.get('/my-account', setup, async (request, reply) => renderAccount(request, reply))

  app.post('/my-account/profile', setup, async (request, reply) => {
    const input = profileForm.parse(request.body ?? {})
    try {
      await service.updateProfile(app, actorOf(request), input)
    } catch (err) {
      if (!(err instanceof ValidationError)) throw err
      return renderAccount(request, reply, { profileErrors: err.fieldErrors, values: { name: input.name, email: input.email } }, 422)
    }
    await flash(request, 'Your account changes were saved.')
    return redirect(request, reply, '/my-account')
  })

  app.post('/my-account/password', setup, async (request, reply) => {
    try {
      await service.changePassword(app, actorOf(request), request.auth!.session?.id ?? null, newPasswordForm.parse(request.body ?? {}))
    } catch (err) {
      if (!(err instanceof ValidationError)) throw err
      return renderAccount(request, reply, { passwordErrors: err.fieldErrors }, 422)
    }
    await flash(request, 'Your password was changed. Your other sessions were signed out.')
    return redirect(request, reply, '/my-account')
  })

  // Two-Factor Setup: the phone number, then the Verification Code screen.
  async function renderSetup(request: FastifyRequest, reply: FastifyReply, step: 'phone' | 'code' | 'done', extra: Record<string, unknown> = {}, status?: number) {
    const tf = await findTwoFactor(app.db, request.auth!.user.id)
    return reply.render('my-account/two-factor-setup', {
      title: 'Two-Factor Setup',
      step,
      smsAvailable: app.messenger.hasTransport('sms'),
      phone: tf?.pending_phone ? maskPhone(tf.pending_phone) : null,
      hasEmail: Boolean(request.auth!.user.email),
      backupEmail: tf?.email_enabled === 1,
      ...extra,
    }, { fragment: 'my-account/_two-factor-setup', status })
  }

  app.get('/my-account/two-factor/setup', setup, async (request, reply) => renderSetup(request, reply, 'phone'))

  app.post('/my-account/two-factor/phone', setup, async (request, reply) => {
    const input = phoneForm.parse(request.body ?? {})
    try {
      await service.startPhoneSetup(app, actorOf(request), input.phone, input.current_password)
    } catch (err) {
      if (err instanceof ValidationError) return renderSetup(request, reply, 'phone', { errors: err.fieldErrors, phoneValue: input.phone }, 422)
      throw err
    }
    return renderSetup(request, reply, 'code')
  })

  app.post('/my-account/two-factor/resend', setup, async (request, reply) => {
    try {
      await service.resendSetupCode(app, actorOf(request))
    } catch (err) {
      if (err instanceof ResendLimitError) return renderSetup(request, reply, 'code', { alert: err.message }, 429)
      if (err instanceof ValidationError) return renderSetup(request, reply, 'phone', { errors: err.fieldErrors }, 422)
      throw err
    }
    return renderSetup(request, reply, 'code', { notice: 'A new code is on its way.' })
  })

  app.post('/my-account/two-factor/verify', setup, async (request, reply) => {
    let recoveryCodes: string[] | null
    try {
      recoveryCodes = await service.confirmPhoneSetup(app, actorOf(request), codeForm.parse(request.body ?? {}).code)
    } catch (err) {
      if (err instanceof ValidationError) return renderSetup(request, reply, 'code', { errors: err.fieldErrors }, 422)
      throw err
    }
    return renderSetup(request, reply, 'done', { recoveryCodes })
  })

  // The authenticator app (beyond the guide): the current password, then a QR code and the
  // secret as text. The secret is shown once, in the answer to the password: never by a GET
  // nor to a wrong code, so another session of the user cannot read it (and enrol it).
  async function renderTotp(request: FastifyRequest, reply: FastifyReply, step: { secret: string } | 'password' | 'code', extra: Record<string, unknown> = {}, status?: number) {
    const view = { title: 'Authenticator App', replacing: Boolean((await findTwoFactor(app.db, request.auth!.user.id))?.totp_secret), ...extra }
    const render = (data: Record<string, unknown>) => reply.render('my-account/authenticator', { ...view, ...data }, { fragment: 'my-account/_authenticator', status })
    if (typeof step === 'string') return render({ step })
    // qrcode (and the PNG code under it) is loaded with the first set-up page, not at start-up.
    const { default: QRCode } = await import('qrcode')
    const qr = await QRCode.toString(totpUri(step.secret, request.auth!.user.username), { type: 'svg', margin: 1, width: 200 })
    return render({ step: 'code', qr, secret: step.secret.replace(/(.{4})/g, '$1 ').trim() })
  }

  app.get('/my-account/two-factor/authenticator', setup, async (request, reply) => renderTotp(request, reply, 'password'))

  app.post('/my-account/two-factor/authenticator/start', setup, async (request, reply) => {
    let secret: string
    try {
      secret = await service.startTotpSetup(app, actorOf(request), passwordForm.parse(request.body ?? {}).current_password)
    } catch (err) {
      if (err instanceof ValidationError) return renderTotp(request, reply, 'password', { errors: err.fieldErrors }, 422)
      throw err
    }
    return renderTotp(request, reply, { secret })
  })

  app.post('/my-account/two-factor/authenticator', setup, async (request, reply) => {
    let recoveryCodes: string[] | null
    try {
      recoveryCodes = await service.confirmTotpSetup(app, actorOf(request), codeForm.parse(request.body ?? {}).code)
    } catch (err) {
      if (!(err instanceof ValidationError)) throw err
      if (!(await service.pendingTotpSecret(app, actorOf(request)))) return renderTotp(request, reply, 'password', { alert: err.fieldErrors.code ?? err.message }, 422)
      return renderTotp(request, reply, 'code', { errors: err.fieldErrors }, 422)
    }
    return renderSetup(request, reply, 'done', { recoveryCodes, method: 'authenticator' })
  })

  app.post('/my-account/two-factor/backup-email', setup, async (request, reply) => {
    try {
      const input = backupEmailForm.parse(request.body ?? {})
      await service.setBackupEmail(app, actorOf(request), input.send_backup_email !== '', input.current_password)
    } catch (err) {
      if (err instanceof ValidationError) return renderAccount(request, reply, { backupErrors: err.fieldErrors }, 422)
      throw err
    }
    return done(request, reply, 'Your backup e-mail setting was saved.')
  })

  app.get('/my-account/two-factor/disable', setup, async (_request, reply) =>
    reply.render('my-account/disable-two-factor', { title: 'Disable Two-Factor' }, { fragment: 'my-account/_disable-two-factor' }),
  )

  app.post('/my-account/two-factor/disable', setup, async (request, reply) => {
    try {
      await service.disableTwoFactor(app, actorOf(request), passwordForm.parse(request.body ?? {}).current_password)
    } catch (err) {
      if (err instanceof ValidationError) return reply.render('my-account/disable-two-factor', { title: 'Disable Two-Factor', errors: err.fieldErrors }, { fragment: 'my-account/_disable-two-factor', status: 422 })
      throw err
    }
    return done(request, reply, 'Two-factor authentication is disabled for your account.')
  })

  app.post('/my-account/two-factor/recovery-codes', setup, async (request, reply) => {
    try {
      const recoveryCodes = await service.regenerateRecoveryCodes(app, actorOf(request), passwordForm.parse(request.body ?? {}).current_password)
      return reply.render('my-account/recovery-codes', { title: 'Recovery Codes', recoveryCodes }, { fragment: 'my-account/_recovery-codes' })
    } catch (err) {
      if (err instanceof ValidationError) return renderAccount(request, reply, { tfErrors: err.fieldErrors }, 422)
      throw err
    }
  })

  // The API Keys tab: keys reach the portal only, never a customer's instance.
  app.get('/my-account/api-keys', { config: { access: 'user' } }, async (request, reply) => {
    const lastUsed = await lastApiKeyUse(app.db, request.auth!.user.id)
    const hasKeys = await hasApiKeys(app.db, request.auth!.user.id)
    return reply.render('my-account/api-keys', { title: 'API Keys', tab: 'api-keys', hasKeys, lastUsed })
  })

  app.get('/my-account/api-keys/generate', { config: { access: 'user' } }, async (_request, reply) =>
    reply.render('my-account/generate-keys', { title: 'Generate API Keys' }, { fragment: 'my-account/_generate-keys' }),
  )

  app.post('/my-account/api-keys', { config: { access: 'user' } }, async (request, reply) => {
    const keys = await generateApiKeys(app, actorOf(request), request.auth!.user)
    reply.header('Cache-Control', 'no-store')
    return reply.render('my-account/generated-keys', { title: 'API Keys', keys }, { fragment: 'my-account/_generated-keys' })
  })
}

export default routes
