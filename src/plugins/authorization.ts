import fp from 'fastify-plugin'
import type { FastifyRequest, preHandlerHookHandler, preParsingHookHandler } from 'fastify'
import { ADMINISTRATOR } from '../lib/roles.ts'
import { CsrfError, ForbiddenError, SecondFactorRequiredError, TwoFactorSetupRequiredError, UnauthorizedError } from '../lib/errors.ts'
import { getSettings, recentSettings } from '../areas/settings/service.ts'
import { safeEqual } from '../lib/tokens.ts'

const UNSAFE = new Set(['POST', 'PUT', 'PATCH', 'DELETE'])

function submittedCsrfToken(request: FastifyRequest): string | undefined {
  const header = request.headers['x-csrf-token']
  if (typeof header === 'string') return header
  const body = request.body as Record<string, unknown> | undefined
  const field = body && typeof body === 'object' ? body._csrf : undefined
  if (typeof field === 'string') return field
  // Multipart forms: @fastify/multipart attaches fields as { value }.
  const value = (field as { value?: unknown } | undefined)?.value
  return typeof value === 'string' ? value : undefined
}

/**
 * The one gate every route passes: who may call it, checked before the body is read or
 * validated (the request is authenticated in onRequest, by session.ts and api.ts), so that
 * a caller without access gets 401/403 without sending or having checked a byte of body.
 * A callback hook that answers at once unless the portal's settings must be read first.
 */
const gate: preParsingHookHandler = function (request, reply, payload, done) {
  const refuse = (err: Error) => {
    // The body will not be read: close the connection rather than drain it.
    if (Number(request.headers['content-length']) > 0 || 'transfer-encoding' in request.headers) reply.header('Connection', 'close')
    done(err)
  }
  let pending: Promise<void> | undefined
  try {
    pending = checkAccess(request)
  } catch (err) {
    return refuse(err as Error)
  }
  if (pending) pending.then(() => done(null, payload), refuse)
  else done(null, payload)
}

/** Then CSRF for unsafe browser requests, which needs the parsed body (the _csrf field). */
const csrfGuard: preHandlerHookHandler = function (request, _reply, done) {
  try {
    checkCsrf(request)
  } catch (err) {
    return done(err as Error)
  }
  done()
}

function checkAccess(request: FastifyRequest): Promise<void> | undefined {
  const { access } = request.routeOptions.config
  if (access === 'public') return undefined
  const auth = request.auth
  if (!auth) throw new UnauthorizedError()
  // API keys reach the API only: pages (and their forms) need a browser session.
  if (auth.via === 'api-key' && !request.routeOptions.config.api) throw new UnauthorizedError('API keys are accepted by the API only.')
  // Until the second factor is given, the session reaches only the code step.
  if (access !== 'pending-2fa' && auth.session?.pending_2fa === 1) throw new SecondFactorRequiredError()
  if ((access === 'user' || access === 'administrator') && auth.via === 'session' && !auth.has2fa) {
    const settings = recentSettings(request.server.db)
    // Read them, then check again (they are recent then).
    if (!settings) return getSettings(request.server.db).then(() => checkAccess(request))
    if (settings.require2fa) throw new TwoFactorSetupRequiredError()
  }
  if (access === 'administrator' && auth.user.role !== ADMINISTRATOR) throw new ForbiddenError()
  return undefined
}

function checkCsrf(request: FastifyRequest): undefined {
  // Requests authenticated by API keys carry no cookie, so they need no CSRF token.
  if (UNSAFE.has(request.method) && request.routeOptions.config.csrf !== false && request.auth?.via !== 'api-key') {
    const submitted = submittedCsrfToken(request)
    if (!submitted || !safeEqual(submitted, request.csrfToken())) throw new CsrfError()
  }
  return undefined
}

// Routes that plugins register for static files are public; every other route must declare
// its access, or the portal refuses to start (fail closed).
const PUBLIC_PREFIXES = ['/static/', '/api/docs']

export default fp(async (app) => {
  app.addHook('onRoute', (route) => {
    route.config ??= {}
    const config = route.config as { access?: string }
    if (!config.access) {
      const url = route.url ?? ''
      if (PUBLIC_PREFIXES.some((p) => url.startsWith(p)) && route.method !== 'POST') config.access = 'public'
      else throw new Error(`Route ${String(route.method)} ${url} does not declare config.access`)
    }
    route.preParsing = [gate, ...(route.preParsing ? [route.preParsing].flat() : [])]
    route.preHandler = [csrfGuard, ...(route.preHandler ? [route.preHandler].flat() : [])]
  })
})
