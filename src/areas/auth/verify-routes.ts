import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify'
import { z } from 'zod'
import { endSession, redirect } from '../../plugins/session.ts'
import { deleteSession, findUserById } from './repository.ts'
import { completeSignIn, recordFailedSignIn } from './service.ts'
import { findTwoFactor } from '../two-factor/repository.ts'
import * as tfa from '../two-factor/service.ts'
import { audit } from '../audit/service.ts'
import { safeNext } from '../../lib/redirects.ts'


// The sign-in code step: a session that passed the password reaches only these routes
// (access 'pending-2fa') until it gives an SMS, e-mail, authenticator or recovery code.
const routes: FastifyPluginAsync = async (app) => {
  async function pendingContext(request: FastifyRequest) {
    const { session, user } = request.auth!
    if (!session || session.pending_2fa !== 1) return null
    const tf = await findTwoFactor(app.db, user.id)
    return { session, user, tf }
  }

  async function render(request: FastifyRequest, reply: FastifyReply, extra: Record<string, unknown> = {}, status?: number) {
    const ctx = (await pendingContext(request))!
    const tf = ctx.tf
    const textable = Boolean(tf?.sms_phone && app.messenger.hasTransport('sms'))
    // Past the cap on texts: no code went out, and Resend Code would send none.
    const textsLimited = textable && (await tfa.textLimitReached(app.db, ctx.user.id))
    return reply.render('auth/verify', {
      title: 'Verification Code',
      next: (request.query as Record<string, unknown>)?.next ?? (request.body as Record<string, unknown>)?.next ?? '',
      phone: textable && !textsLimited ? tfa.maskPhone(tf!.sms_phone!) : null,
      textsLimited,
      totp: Boolean(tf?.totp_secret),
      backupEmail: Boolean(tf?.email_enabled && ctx.user.email),
      ...extra,
    }, { status })
  }

  app.get('/login/verify', { config: { access: 'pending-2fa' } }, async (request, reply) => {
    if (!(await pendingContext(request))) return reply.redirect('/accounts', 303)
    return render(request, reply)
  })

  app.post('/login/verify', { config: { access: 'pending-2fa' } }, async (request, reply) => {
    const ctx = await pendingContext(request)
    if (!ctx) return redirect(request, reply, '/accounts')
    const body = z.object({ code: z.string().max(100).catch(''), next: z.string().max(2000).optional().catch(undefined) }).parse(request.body ?? {})
    const code = body.code.replace(/\s+/g, '')
    let method: string | null = null
    if (/[a-z-]/i.test(code)) {
      if (await tfa.checkRecoveryCode(app.db, ctx.user.id, code)) method = 'recovery code'
    } else if (await tfa.checkSentCode(app.db, ctx.session.id, code)) {
      method = 'sent code'
    } else if (ctx.tf && (await tfa.checkTotp(app, ctx.tf, code))) {
      method = 'authenticator app'
    }
    if (method) {
      await completeSignIn(request, ctx.user, ctx.session.remember_me === 1, { method }, ctx.session.id)
      return redirect(request, reply, safeNext(body.next))
    }
    // A wrong code: a few void the attempt, and each counts as a failed sign-in.
    const attempts = ctx.session.code_attempts + 1
    await app.db.updateTable('sessions').set({ code_attempts: attempts }).where('id', '=', ctx.session.id).execute()
    const user = (await findUserById(app.db, ctx.user.id))!
    await recordFailedSignIn(request, user, { countsTowardLock: true, reason: 'wrong verification code' })
    if (attempts >= tfa.MAX_CODE_ATTEMPTS) {
      await deleteSession(app.db, ctx.session.id)
      await endSession(request)
      return redirect(request, reply, '/login?m=too-many-codes')
    }
    return render(request, reply, { alert: 'That code is not valid or has expired. Check it and try again.' }, 401)
  })

  // Resend Code (text message) and the backup e-mail: each voids the previous code.
  app.post('/login/verify/resend', { config: { access: 'pending-2fa' } }, async (request, reply) => {
    const ctx = await pendingContext(request)
    if (!ctx) return redirect(request, reply, '/accounts')
    const channel = (request.body as Record<string, unknown>)?.channel === 'email' ? 'email' : 'sms'
    const to = channel === 'sms' ? ctx.tf?.sms_phone : ctx.tf?.email_enabled ? ctx.user.email : null
    if (!to || (channel === 'sms' && !app.messenger.hasTransport('sms'))) {
      return render(request, reply, { alert: channel === 'sms' ? 'Text messages cannot be sent for this account.' : 'No backup e-mail is set up for this account.' }, 422)
    }
    try {
      await tfa.sendCode(app, { boundTo: ctx.session.id, channel, to, userId: ctx.user.id, purpose: '2fa_sign_in' })
    } catch (err) {
      // Past the cap on texts the page itself says so and offers the other ways.
      if (err instanceof tfa.TextLimitError) return render(request, reply, {}, 429)
      if (err instanceof tfa.ResendLimitError) return render(request, reply, { alert: err.message }, 429)
      throw err
    }
    await audit(app.db, request, { action: 'auth.code_resent', actor: ctx.user, fields: { channel } })
    return render(request, reply, { notice: channel === 'sms' ? 'A new code is on its way by text message.' : 'A code is on its way to your e-mail address.' })
  })
}

export default routes
