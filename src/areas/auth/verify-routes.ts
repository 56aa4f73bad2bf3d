import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify'
import { z } from 'zod'
import { ValidationError } from '../../lib/errors.ts'
import { clientOf, endSession, redirect, startSession } from '../../plugins/session.ts'
import { type PendingSignIn, resendSignInCode, verifySignInCode } from './service.ts'
import { findTwoFactor } from '../two-factor/repository.ts'
import * as tfa from '../two-factor/service.ts'
import { safeNext } from '../../lib/redirects.ts'

const next = z.string().max(2000).optional().catch(undefined)
const nextOnly = z.object({ next })
const codeForm = z.object({ code: z.string().max(100).catch(''), next })
const resendForm = z.object({ channel: z.string().catch('') })

// The sign-in code step: a session that passed the password reaches only these routes
// (access 'pending-2fa') until it gives an SMS, e-mail, authenticator or recovery code.
const routes: FastifyPluginAsync = async (app) => {
  async function pendingSignIn(request: FastifyRequest): Promise<PendingSignIn | null> {
    const { session, user } = request.auth!
    if (!session || session.pending_2fa !== 1) return null
    return { session, user, tf: await findTwoFactor(app.db, user.id) }
  }

  async function render(request: FastifyRequest, reply: FastifyReply, pending: PendingSignIn, extra: Record<string, unknown> = {}, status?: number) {
    const { tf, user } = pending
    const textable = Boolean(tf?.sms_phone && app.messenger.hasTransport('sms'))
    // Past the cap on texts: no code went out, and Resend Code would send none.
    const textsLimited = textable && (await tfa.textLimitReached(app.db, user.id))
    return reply.render('auth/verify', {
      title: 'Verification Code',
      next: nextOnly.parse(request.query ?? {}).next ?? nextOnly.parse(request.body ?? {}).next ?? '',
      phone: textable && !textsLimited ? tfa.maskPhone(tf!.sms_phone!) : null,
      textsLimited,
      totp: Boolean(tf?.totp_secret),
      backupEmail: Boolean(tf?.email_enabled && user.email),
      ...extra,
    }, { status })
  }

  app.get('/login/verify', { config: { access: 'pending-2fa' } }, async (request, reply) => {
    const pending = await pendingSignIn(request)
    if (!pending) return reply.redirect('/accounts', 303)
    return render(request, reply, pending)
  })

  app.post('/login/verify', { config: { access: 'pending-2fa' } }, async (request, reply) => {
    const pending = await pendingSignIn(request)
    if (!pending) return redirect(request, reply, '/accounts')
    const form = codeForm.parse(request.body ?? {})
    const result = await verifySignInCode(app, clientOf(request), pending, form.code)
    if (result.token) {
      startSession(request, result.token)
      return redirect(request, reply, safeNext(form.next))
    }
    if (result.ended) {
      await endSession(request)
      return redirect(request, reply, '/login?m=too-many-codes')
    }
    return render(request, reply, pending, { alert: 'That code is not valid or has expired. Check it and try again.' }, 401)
  })

  // Resend Code (text message) and the backup e-mail: each voids the previous code.
  app.post('/login/verify/resend', { config: { access: 'pending-2fa' } }, async (request, reply) => {
    const pending = await pendingSignIn(request)
    if (!pending) return redirect(request, reply, '/accounts')
    const channel = resendForm.parse(request.body ?? {}).channel === 'email' ? 'email' : 'sms'
    try {
      await resendSignInCode(app, clientOf(request), pending, channel)
    } catch (err) {
      if (err instanceof ValidationError) return render(request, reply, pending, { alert: err.message }, 422)
      // Past the cap on texts the page itself says so and offers the other ways.
      if (err instanceof tfa.TextLimitError) return render(request, reply, pending, {}, 429)
      if (err instanceof tfa.ResendLimitError) return render(request, reply, pending, { alert: err.message }, 429)
      throw err
    }
    return render(request, reply, pending, { notice: channel === 'sms' ? 'A new code is on its way by text message.' : 'A code is on its way to your e-mail address.' })
  })
}

export default routes
