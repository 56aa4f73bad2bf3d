import { randomUUID } from 'node:crypto'
import type { InjectOptions, LightMyRequestResponse } from 'fastify'
import { ADMINISTRATOR, ROLES } from '../../src/lib/roles.ts'
import { type Actor, type World, badKeyHeader, impersonatedUsername } from './actors.ts'
import { type OpenApiOperation, jsonBodySchema, multipartBody, requiredQuery, uploadFor, validValue } from './bodies.ts'
import { type RouteEntry, UNSAFE, segmentBefore } from './route-table.ts'

// The authorization matrix's rules: which object a path parameter names, what each caller
// sends, and the answer each caller must get from the route's declared access.

export type Variant = 'assigned' | 'unassigned' | null
export type BodyKind = 'none' | 'valid' | 'wrong-types' | 'unparsable'

const BASIC = ROLES[0].level

/** What kind of object a parameter names, from its name and the segment before it. */
function paramKind(route: RouteEntry, param: string): 'user' | 'account' | 'logo' | 'saved-search' | 'topic' | 'file' {
  const seg = segmentBefore(route.url, param)
  if (param === '*') return 'file'
  if (param === 'account_uuid' || (seg === 'accounts' && param === 'uuid')) return 'account'
  if (seg === 'logos' && param === 'uuid') return 'logo'
  if (seg === 'saved-searches' && param === 'uuid') return 'saved-search'
  if ((seg === 'users' && param === 'id') || param === 'user_uuid') return 'user'
  if (seg === 'help' && param === 'topic') return 'topic'
  throw new Error(`${route.method} ${route.url}: the matrix does not know what :${param} names; teach test/generated/matrix.ts (paramKind)`)
}

/** Routes whose answer depends on whether the caller's accounts include the object. */
export function isAccountScoped(route: RouteEntry): boolean {
  return route.params.some((p) => ['account', 'logo'].includes(paramKind(route, p)))
}

/**
 * The path with real ids. A user parameter names the target user on Administrator routes and
 * the caller itself elsewhere (a user may address only themself there).
 */
export function fillPath(route: RouteEntry, world: World, actor: Actor, variant: Variant): string {
  return route.url.replace(/:(\w+)|\*/g, (whole, name: string | undefined) => {
    const param = name ?? '*'
    switch (paramKind(route, param)) {
      case 'user': {
        const who = route.access === 'administrator' || !actor.self ? world.target : actor.self
        return route.api || param === 'user_uuid' ? who.uuid : String(who.id)
      }
      case 'account':
        return variant === 'unassigned' ? world.accountB.uuid : world.accountA.uuid
      case 'logo':
        return variant === 'unassigned' ? world.logoB.uuid : world.logoA.uuid
      case 'saved-search':
        return actor.savedSearch ?? randomUUID()
      case 'topic':
        return 'getting-started'
      case 'file':
        return route.url.startsWith('/static/htmx/') ? 'htmx.min.js' : route.url.startsWith('/static/') ? 'app.css' : 'index.css'
    }
    return whole
  })
}

let address = 0
/** A fresh client address for every request, so that per-address throttles never mix cells. */
function nextAddress(): string {
  address += 1
  return `10.${(address >> 16) & 255}.${(address >> 8) & 255}.${address & 255}`
}

export function buildRequest(route: RouteEntry, op: OpenApiOperation | undefined, world: World, actor: Actor, variant: Variant, body: BodyKind, withCsrf: boolean): InjectOptions {
  const refs = { account: world.accountA.uuid, logo: world.logoA.uuid, user: world.successor.uuid }
  const headers: Record<string, string> = { ...actor.headers }
  if (actor.kind === 'bad-key') headers['x-apikeys'] = badKeyHeader()
  const csrf = withCsrf && actor.csrf && !actor.viaKey ? actor.csrf : undefined
  if (csrf && UNSAFE.has(route.method)) headers['x-csrf-token'] = csrf
  const url = fillPath(route, world, actor, variant) + (route.api ? requiredQuery(op, refs) : '')
  const options: InjectOptions = { method: route.method as InjectOptions['method'], url, headers, remoteAddress: nextAddress() }
  if (body === 'valid') {
    if (route.multipart) {
      const m = multipartBody({ name: 'Matrix logo', ...(csrf ? { _csrf: csrf } : {}) }, uploadFor(route.url))
      headers['content-type'] = m.contentType
      options.payload = m.payload
    } else if (route.api) {
      const schema = jsonBodySchema(op)
      if (schema) {
        headers['content-type'] = 'application/json'
        options.payload = JSON.stringify(validValue(schema, 'body', refs))
      }
    } else {
      headers['content-type'] = 'application/x-www-form-urlencoded'
      options.payload = new URLSearchParams({ ...(csrf ? { _csrf: csrf } : {}), name: 'Matrix', notes: 'Matrix notes' }).toString()
    }
  } else if (body === 'wrong-types') {
    const props = Object.keys(jsonBodySchema(op)?.properties ?? { name: {}, notes: {}, code: {} })
    headers['content-type'] = 'application/json'
    options.payload = JSON.stringify(Object.fromEntries(props.filter((p) => p !== '_csrf').map((p, i) => [p, i % 2 ? { deep: [[[null]]] } : [[{}], 12, true]])))
  } else if (body === 'unparsable') {
    if (route.multipart) {
      headers['content-type'] = 'multipart/form-data; boundary=matrixbroken'
      options.payload = '--matrixbroken\r\nContent-Disposition: form-data; name="name"\r\n\r\nunterminated'
    } else {
      headers['content-type'] = 'application/json'
      options.payload = '{"name": ["unterminated'
    }
  }
  return options
}

export interface Expectation {
  label: string
  ok: (res: LightMyRequestResponse) => boolean
}

const location = (res: LightMyRequestResponse) => String(res.headers.location ?? res.headers['hx-redirect'] ?? '')
const isJson = (res: LightMyRequestResponse) => String(res.headers['content-type'] ?? '').startsWith('application/json')
const assistRefusal = (res: LightMyRequestResponse) => res.statusCode === 403 && res.body.includes('While assisting')

const ALLOWED: Expectation = { label: 'allowed (not 401/403, no 5xx)', ok: (r) => r.statusCode < 500 && r.statusCode !== 401 && r.statusCode !== 403 }
const NOT_FOUND: Expectation = { label: '404 (not one of the caller’s accounts)', ok: (r) => r.statusCode === 404 }
const BAD_KEY: Expectation = { label: '401 JSON (or 429 with Retry-After)', ok: (r) => (r.statusCode === 401 && isJson(r)) || (r.statusCode === 429 && r.headers['retry-after'] !== undefined) }
const KEY_ON_PAGE: Expectation = { label: '401 (API keys reach the API only)', ok: (r) => r.statusCode === 401 }
const CSRF: Expectation = { label: '403 (no CSRF token)', ok: (r) => r.statusCode === 403 }

function forbidden(api: boolean): Expectation {
  return api
    ? { label: '403 JSON', ok: (r) => r.statusCode === 403 && isJson(r) }
    : { label: '403 page', ok: (r) => r.statusCode === 403 && String(r.headers['content-type']).startsWith('text/html') }
}

/** Signed out: 401 for the API and htmx (HX-Redirect), 303 to the Log in page otherwise. */
function signInFirst(api: boolean, htmx: boolean, detour: '/login' | '/login/verify'): Expectation {
  if (api) return { label: '401 JSON', ok: (r) => r.statusCode === 401 && isJson(r) }
  const at = (r: LightMyRequestResponse) => location(r) === detour || location(r).startsWith(`${detour}?`)
  if (htmx) return { label: `401 with HX-Redirect ${detour}`, ok: (r) => r.statusCode === 401 && at(r) }
  return { label: `303 to ${detour}`, ok: (r) => r.statusCode === 303 && at(r) }
}

/** The answer a cell must get, from the route's declared access alone. */
export function expectFor(route: RouteEntry, actor: Actor, variant: Variant, body: BodyKind, withCsrf: boolean): Expectation {
  const malformed = body === 'wrong-types' || body === 'unparsable'
  const unsafe = UNSAFE.has(route.method)
  const htmx = actor.headers['hx-request'] === 'true'
  const json = route.api || route.url.startsWith('/api/')
  if (actor.kind === 'bad-key') return BAD_KEY
  const browser = !actor.viaKey
  // X-Impersonate on a cookie may be refused (400) before the CSRF check is reached.
  if (actor.kind === 'impersonate-on-cookie' && unsafe && route.csrf && !withCsrf) return { label: '403 (no CSRF token), or X-Impersonate refused (400)', ok: (r) => r.statusCode === 403 || r.statusCode === 400 }
  if (route.access === 'public') {
    if (unsafe && route.csrf && browser) return withCsrf ? { label: 'no 403, no 5xx', ok: (r) => r.statusCode < 500 && r.statusCode !== 403 } : CSRF
    return { label: 'no 5xx', ok: (r) => r.statusCode < 500 }
  }
  if (actor.kind === 'signed-out' || actor.kind === 'signed-out-htmx') return signInFirst(json, htmx, '/login')
  if (actor.viaKey && !route.api) {
    // X-Impersonate off the API may be refused outright instead (issue 15 item 1).
    if (actor.kind === 'impersonating-key') return { label: '401, or X-Impersonate refused (400/403)', ok: (r) => [400, 401, 403].includes(r.statusCode) }
    return KEY_ON_PAGE
  }
  if (actor.kind === 'pending-2fa' || actor.kind === 'pending-2fa-htmx') {
    if (route.access !== 'pending-2fa') return signInFirst(json, htmx, '/login/verify')
  }
  if (unsafe && route.csrf && browser && !withCsrf) return CSRF
  if (route.access === 'pending-2fa') {
    // The code step answers a wrong code with its own 401 page; never a refusal or the sign-in page.
    return { label: 'the code step (no 403, no 5xx, not sent to sign in)', ok: (r) => r.statusCode < 500 && r.statusCode !== 403 && !(r.statusCode === 303 && /^\/login(\?|$)/.test(location(r))) }
  }
  const role = actor.role ?? BASIC
  if (route.access === 'administrator' && role !== ADMINISTRATOR) return forbidden(json)
  if (variant === 'unassigned' && role !== ADMINISTRATOR) {
    return malformed ? { label: '404, or 400 for the body', ok: (r) => r.statusCode === 404 || r.statusCode === 400 } : NOT_FOUND
  }
  if ((actor.kind === 'assisting' || actor.kind === 'impersonating-key') && unsafe) {
    return { label: `${ALLOWED.label}, or 403 "While assisting…"`, ok: (r) => ALLOWED.ok(r) || assistRefusal(r) }
  }
  if (actor.kind === 'impersonate-on-cookie') {
    return { label: `as the Administrator (${ALLOWED.label}), or refused with 400/403`, ok: (r) => ALLOWED.ok(r) || r.statusCode === 400 || r.statusCode === 403 }
  }
  return ALLOWED
}

/**
 * X-Impersonate on a cookie must not act as the named user: a page shows the signed-in
 * Administrator in its menu, and an answer names the other user only if the plain
 * Administrator's answer does too.
 */
export function impersonationHonoured(actor: Actor, res: LightMyRequestResponse, plainAdmin: LightMyRequestResponse | undefined): string | null {
  const other = impersonatedUsername(actor)
  if (!other) return null
  const adminAllowed = plainAdmin !== undefined && plainAdmin.statusCode < 300
  // Refused with the role message, or not found, where the Administrator is answered: the other user's rights were applied.
  if (adminAllowed && res.statusCode === 403 && res.body.includes('Your role does not allow this')) return `refused for ${other}'s role`
  if (adminAllowed && res.statusCode === 404) return `not found as for ${other}, found for the Administrator`
  const plainAdminBody = plainAdmin?.body
  if (res.statusCode >= 300) return null
  const who = /class="menu-who">([\s\S]*?)<\/p>/.exec(res.body)?.[1]
  if (who !== undefined && !who.includes(actor.self!.username)) return `the page is shown as ${who.includes(other) ? other : 'someone else'}`
  if (plainAdminBody !== undefined && res.body.includes(other) && !plainAdminBody.includes(other)) return `the answer names ${other}, which the Administrator's own does not`
  return null
}

export function describe(res: LightMyRequestResponse): string {
  const where = location(res)
  let message = ''
  if (isJson(res)) {
    try {
      message = String((res.json() as { message?: unknown }).message ?? '').slice(0, 120)
    } catch {
      message = ''
    }
  } else {
    message = /<h1[^>]*>([\s\S]*?)<\/h1>/.exec(res.body)?.[1]?.replace(/<[^>]+>/g, '').trim().slice(0, 80) ?? ''
  }
  return `${res.statusCode}${where ? ` → ${where}` : ''}${message ? ` (${message})` : ''}`
}
