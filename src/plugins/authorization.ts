import fp from 'fastify-plugin'
import type { FastifyRequest, preHandlerAsyncHookHandler, preParsingAsyncHookHandler } from 'fastify'
import { ADMINISTRATOR } from '../lib/roles.ts'
import { CsrfError, ForbiddenError, SecondFactorRequiredError, TwoFactorSetupRequiredError, UnauthorizedError } from '../lib/errors.ts'
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

export interface AuthorizationOptions {
  /** Whether the require-2FA setting is on (from the settings area, by app.ts). */
  require2fa(): Promise<boolean>
}

/**
 * The one gate every route passes: who may call it, checked before the body is read or
 * validated (the request is authenticated in onRequest, by session.ts and api.ts), so that
 * a caller without access gets 401/403 without sending or having checked a byte of body.
 */
function gateOf(opts: AuthorizationOptions): preParsingAsyncHookHandler {
  return async function gate(request, reply) {
    try {
      await checkAccess(request, opts)
    } catch (err) {
      // The body will not be read: close the connection rather than drain it.
      if (Number(request.headers['content-length']) > 0 || 'transfer-encoding' in request.headers) reply.header('Connection', 'close')
      throw err
    }
  }
}

async function checkAccess(request: FastifyRequest, opts: AuthorizationOptions): Promise<void> {
  const { access } = request.routeOptions.config
  if (access === 'public') return
  const auth = request.auth
  if (!auth) throw new UnauthorizedError()
  // API keys reach the API only: pages (and their forms) need a browser session.
  if (auth.via === 'api-key' && !request.routeOptions.config.api) throw new UnauthorizedError('API keys are accepted by the API only.')
  // Until the second factor is given, the session reaches only the code step.
  if (access !== 'pending-2fa' && auth.session?.pending_2fa === 1) throw new SecondFactorRequiredError()
  if ((access === 'user' || access === 'administrator') && auth.via === 'session' && !auth.has2fa && (await opts.require2fa())) {
    throw new TwoFactorSetupRequiredError()
  }
  if (access === 'administrator' && auth.user.role !== ADMINISTRATOR) throw new ForbiddenError()
}

/** Then CSRF for unsafe browser requests, which needs the parsed body (the _csrf field). */
const csrfGuard: preHandlerAsyncHookHandler = async function (request) {
  // Requests authenticated by API keys carry no cookie, so they need no CSRF token.
  if (UNSAFE.has(request.method) && request.routeOptions.config.csrf !== false && request.auth?.via !== 'api-key') {
    const submitted = submittedCsrfToken(request)
    if (!submitted || !safeEqual(submitted, request.csrfToken())) throw new CsrfError()
  }
}

// Routes that plugins register for static files are public; every other route must declare
// its access, or the portal refuses to start (fail closed).
const PUBLIC_PREFIXES = ['/static/', '/api/docs']

export default fp<AuthorizationOptions>(async (app, opts) => {
  const gate = gateOf(opts)
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
