import fp from 'fastify-plugin'
import type { FastifyRequest, preHandlerHookHandler } from 'fastify'
import { ADMINISTRATOR } from '../lib/roles.ts'
import { CsrfError, ForbiddenError, UnauthorizedError } from '../lib/errors.ts'
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

/** The one gate every route passes: who may call it, then CSRF for unsafe browser requests. */
const guard: preHandlerHookHandler = async function (request) {
  const { access, csrf } = request.routeOptions.config
  if (access !== 'public') {
    if (!request.auth) throw new UnauthorizedError()
    if (access === 'administrator' && request.auth.user.role !== ADMINISTRATOR) throw new ForbiddenError()
  }
  // Requests authenticated by API keys carry no cookie, so they need no CSRF token.
  if (UNSAFE.has(request.method) && csrf !== false && request.auth?.via !== 'api-key') {
    const submitted = submittedCsrfToken(request)
    if (!submitted || !safeEqual(submitted, request.csrfToken())) throw new CsrfError()
  }
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
    const existing = route.preHandler ? (Array.isArray(route.preHandler) ? route.preHandler : [route.preHandler]) : []
    route.preHandler = [guard, ...existing]
  })
})
