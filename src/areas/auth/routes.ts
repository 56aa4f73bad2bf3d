import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify'
import rateLimit from '@fastify/rate-limit'
import { z } from 'zod'
import { ValidationError } from '../../lib/errors.ts'
import { safeNext } from '../../lib/redirects.ts'
import { actorOf, clientOf, endSession, originOf, redirect, startSession } from '../../plugins/session.ts'
import { audit } from '../audit/service.ts'
import * as service from './service.ts'

// Over-long or malformed fields count as empty: the form answers as for any wrong input.
const text = (max: number) => z.string().max(max).catch('')

const loginForm = z.object({
  username: text(300),
  password: text(1000),
  remember_me: z.string().optional().catch(undefined),
  next: z.string().max(2000).optional().catch(undefined),
})

const NOTICES: Record<string, string> = {
  reset: 'Your password has been reset. Sign in with your new password.',
  setup: 'The Administrator has been created. Sign in to continue.',
  'signed-out': 'You have signed out.',
  expired: 'Your session has ended. Sign in again to continue.',
  'too-many-codes': 'Too many wrong verification codes. Sign in again to get a new code.',
}

const loginQuery = z.object({ m: z.string().catch(''), next: z.string().catch('') })
const tokenQuery = z.object({ token: z.string().catch('') })

const routes: FastifyPluginAsync = async (app) => {
  // Sign-in and reset mails are limited per client address (the lockout protects each user).
  await app.register(rateLimit, { global: false, max: app.config.signInRateLimitPerMinute, timeWindow: 60_000 })
  const limited = { config: { access: 'public' as const, rateLimit: { max: app.config.signInRateLimitPerMinute, timeWindow: 60_000 } } }
  const mailLimited = { config: { access: 'public' as const, rateLimit: { max: Math.max(1, Math.ceil(app.config.signInRateLimitPerMinute / 3)), timeWindow: 60_000 } } }
  // Pages that carry a reset or setup token in their URL or form: never kept by a cache
  // (a shared computer's back button, a proxy), and never sent on as a referrer.
  const tokenPage = {
    onRequest: (_request: FastifyRequest, reply: FastifyReply, done: () => void) => {
      reply.header('Cache-Control', 'no-store').header('Referrer-Policy', 'no-referrer')
      done()
    },
  }
  app.get('/', { config: { access: 'public' } }, async (request, reply) =>
    reply.redirect(request.auth ? '/accounts' : '/login', 303),
  )

  app.get('/login', { config: { access: 'public' } }, async (request, reply) => {
    if (request.auth) return reply.redirect('/accounts', 303)
    const query = loginQuery.parse(request.query ?? {})
    return reply.render('auth/login', { title: 'Sign In', notice: NOTICES[query.m], next: query.next })
  })

  app.post('/login', limited, async (request, reply) => {
    const form = loginForm.parse(request.body ?? {})
    const rememberMe = Boolean(form.remember_me)
    const result = form.username && form.password
      ? await service.signIn(app, clientOf(request), { username: form.username, password: form.password, rememberMe })
      : null
    if (!result) {
      return reply.render(
        'auth/login',
        { title: 'Sign In', alert: 'Invalid username or password.', username: form.username, rememberMe, next: form.next },
        { status: 401 },
      )
    }
    startSession(request, result.token)
    if (result.pending) return redirect(request, reply, `/login/verify${form.next ? `?next=${encodeURIComponent(safeNext(form.next))}` : ''}`)
    return redirect(request, reply, safeNext(form.next))
  })

  app.post('/logout', { config: { access: 'public' } }, async (request, reply) => {
    if (request.auth) await audit(app.db, actorOf(request), { action: 'auth.sign_out' })
    await endSession(request)
    return redirect(request, reply, '/login?m=signed-out')
  })

  app.get('/forgot-password', { config: { access: 'public' } }, async (_request, reply) =>
    reply.render('auth/forgot-password', { title: 'Forgot Password' }),
  )

  app.post('/forgot-password', mailLimited, async (request, reply) => {
    const form = z.object({ username: text(300) }).parse(request.body ?? {})
    if (!form.username.trim()) {
      return reply.render('auth/forgot-password', { title: 'Forgot Password', alert: 'Type your username.' }, { status: 422 })
    }
    await service.requestPasswordReset(app, originOf(request), form.username)
    return reply.render('auth/forgot-password', { title: 'Forgot Password', sent: true })
  })

  app.get('/reset-password', { ...tokenPage, config: { access: 'public' } }, async (request, reply) => {
    const { token } = tokenQuery.parse(request.query ?? {})
    const valid = await service.findValidCode(app.db, 'password_reset', token)
    return reply.render('auth/reset-password', { title: 'Choose a New Password', token, invalid: !valid }, { status: valid ? 200 : 410 })
  })

  app.post('/reset-password', { ...tokenPage, ...limited }, async (request, reply) => {
    const form = z.object({ token: text(200), password: text(1000), confirm: text(1000) }).parse(request.body ?? {})
    try {
      await service.resetPassword(app, originOf(request), form.token, form.password, form.confirm)
    } catch (err) {
      if (err instanceof service.InvalidLinkError) {
        return reply.render('auth/reset-password', { title: 'Choose a New Password', invalid: true }, { status: 410 })
      }
      if (err instanceof ValidationError) {
        return reply.render('auth/reset-password', { title: 'Choose a New Password', token: form.token, errors: err.fieldErrors, alert: err.message }, { status: 422 })
      }
      throw err
    }
    await endSession(request)
    return redirect(request, reply, '/login?m=reset')
  })

  app.get('/setup', { ...tokenPage, config: { access: 'public' } }, async (request, reply) => {
    const { token } = tokenQuery.parse(request.query ?? {})
    const valid = await service.findValidCode(app.db, 'setup', token)
    return reply.render('setup/index', { title: 'Set Up', token, invalid: !valid, values: {} }, { status: valid ? 200 : 410 })
  })

  app.post('/setup', { ...tokenPage, ...limited }, async (request, reply) => {
    const form = z
      .object({ token: text(200), name: text(300), username: text(300), email: text(300), password: text(1000), confirm: text(1000) })
      .parse(request.body ?? {})
    try {
      await service.completeSetup(app.db, originOf(request), form.token, { ...form, email: form.email || null })
    } catch (err) {
      if (err instanceof service.InvalidLinkError) {
        return reply.render('setup/index', { title: 'Set Up', invalid: true, values: {} }, { status: 410 })
      }
      if (err instanceof ValidationError) {
        const values = { name: form.name, username: form.username, email: form.email }
        return reply.render('setup/index', { title: 'Set Up', token: form.token, values, errors: err.fieldErrors, alert: err.message }, { status: 422 })
      }
      throw err
    }
    return redirect(request, reply, '/login?m=setup')
  })
}

export default routes
