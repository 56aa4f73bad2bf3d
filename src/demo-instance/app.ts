// A demo customer instance: the other side of the portal's single sign-on, as a small
// Fastify app that knows only the contract in docs/sso.md. It runs alone on its own port
// (buildDemoInstance) or inside another Fastify server under a path (demoInstancePlugin,
// registered with `{ prefix: basePath }`). It imports nothing from the portal.
import fs from 'node:fs'
import path from 'node:path'
import Fastify, { type FastifyInstance, type FastifyPluginAsync, type FastifyReply, type FastifyRequest, type FastifyServerOptions } from 'fastify'
import { Eta } from 'eta'
import type { JSONWebKeySet } from 'jose'
import { MemoryJtiStore, type JtiStore } from './jti-store.ts'
import { ROLE_LEVELS, ROLE_RULES } from './roles.ts'
import { SessionStore, checkCsrf, readCookie, sessionCookie, type InstanceSession } from './sessions.ts'
import { DemoStore, SETTINGS_TYPES, TRANSFER_TABLE, type InstanceObject, type ObjectType } from './store.ts'
import { Refusal, createVerifier, type InterfaceCode } from './verify.ts'

export { MemoryJtiStore, type JtiStore } from './jti-store.ts'
export { ROLE_RULES, type RoleLevel, type RoleRule } from './roles.ts'
export { TRANSFER_TABLE } from './store.ts'
export { Refusal, type RefusalCode } from './verify.ts'

export interface DemoInstanceOptions {
  /** The trusted portal's URL: the only accepted `iss`, and where its JWKS lives. */
  portalUrl: string
  /** The portal's public keys: a JWKS (tests), or a URL; default `${portalUrl}/.well-known/jwks.json`. */
  jwks?: JSONWebKeySet | URL
  /** This instance's own origin (scheme://host:port, no path): the only accepted `aud`. */
  origin: string
  /** '' when the instance has its own server; '/demo-instance' (say) when mounted under a path. */
  basePath: string
  /** Where used jtis are remembered; in memory by default. */
  jtiStore?: JtiStore
  /** The session cookie's name (cookies ignore ports: two instances on one host need two names). */
  cookieName?: string
}

export interface BuildDemoInstanceOptions extends DemoInstanceOptions {
  logger?: FastifyServerOptions['logger']
}

export const VIEWS_DIR = path.resolve(import.meta.dirname, 'views')
export const PUBLIC_DIR = path.resolve(import.meta.dirname, 'public')

export const INTERFACES: Record<InterfaceCode, { title: string; short: string; scans: string; results: string; scanNoun: string; resultsHint: string }> = {
  vm: { title: 'Vulnerability Management', short: 'VM', scans: 'Scans', results: 'Scan results', scanNoun: 'scan', resultsHint: 'Findings by severity from completed scans.' },
  was: { title: 'Web Application Scanning', short: 'WAS', scans: 'Web application scans', results: 'Scan results', scanNoun: 'web application scan', resultsHint: 'Findings from completed web application scans.' },
  cs: { title: 'Container Security', short: 'CS', scans: 'Image scans', results: 'Scanned images', scanNoun: 'image scan', resultsHint: 'Vulnerabilities and malware found in container images.' },
}
const INTERFACE_CODES = Object.keys(INTERFACES) as InterfaceCode[]

/**
 * The portal registers a hook that refuses routes without `config.access` and checks its
 * own CSRF token on unsafe methods. The instance has its own rules, so when mounted it says
 * "public, no portal CSRF"; standalone these keys are simply ignored.
 */
const HOST_ROUTE_CONFIG = { access: 'public', csrf: false } as const

const SSO_BODY_LIMIT = 1_048_576
const TRANSFER_BODY_LIMIT = 16_384
const FORM_BODY_LIMIT = 16_384

function fmtTime(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) return '—'
  return `${new Date(ms).toISOString().slice(0, 16).replace('T', ' ')} UTC`
}

function normalizeOptions(opts: DemoInstanceOptions) {
  const portalUrl = opts.portalUrl.replace(/\/+$/, '')
  const portal = new URL(portalUrl)
  if (portal.protocol !== 'http:' && portal.protocol !== 'https:') throw new Error('demo instance: portalUrl must be an http(s) URL')
  const origin = new URL(opts.origin).origin
  if (origin !== opts.origin.replace(/\/+$/, '')) throw new Error(`demo instance: origin must be scheme://host[:port] with no path (got ${opts.origin})`)
  const basePath = opts.basePath
  if (basePath !== '' && !/^(\/[A-Za-z0-9._~-]+)+$/.test(basePath)) {
    throw new Error(`demo instance: basePath must be '' or like '/demo-instance' (no trailing slash), got '${basePath}'`)
  }
  return { ...opts, portalUrl, portalOrigin: portal.origin, origin, basePath, cookieName: opts.cookieName ?? 'demo_instance_session' }
}

/**
 * The instance as a Fastify plugin. Register it with `{ prefix: opts.basePath }`; it keeps
 * its hooks, error pages and body parser to itself (it is not wrapped in fastify-plugin).
 */
export function demoInstancePlugin(options: DemoInstanceOptions): FastifyPluginAsync {
  const opts = normalizeOptions(options)
  return async function demoInstance(app) {
    if (app.prefix !== opts.basePath && !(opts.basePath === '' && app.prefix === '/')) {
      throw new Error(`demo instance: registered with prefix '${app.prefix}' but basePath is '${opts.basePath}'; register it with { prefix: basePath }`)
    }
    const base = opts.basePath
    const secure = opts.origin.startsWith('https://')
    const jtiStore = opts.jtiStore ?? new MemoryJtiStore()
    const verifier = createVerifier({ portalUrl: opts.portalUrl, origin: opts.origin, jwks: opts.jwks, jtiStore })
    const sessions = new SessionStore()
    const store = new DemoStore()
    const eta = new Eta({ views: VIEWS_DIR, cache: true, autoEscape: true })
    const css = fs.readFileSync(path.join(PUBLIC_DIR, 'demo-instance.css'))
    const defaultLogo = fs.readFileSync(path.join(PUBLIC_DIR, 'default-logo.svg'))
    const cookiePath = base || '/'

    // Forms: a host (the portal) may already parse them; standalone, a tiny parser does.
    if (!app.hasContentTypeParser('application/x-www-form-urlencoded')) {
      app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string' }, (_req, body, done) => {
        done(null, Object.fromEntries(new URLSearchParams(body as string)))
      })
    }

    // Strict headers on everything the instance serves. Forms may go to the instance and
    // (through Leave User's redirect) to the portal; no script at all; never framed.
    const csp = [
      "default-src 'none'",
      "style-src 'self'",
      "img-src 'self'",
      `form-action 'self' ${opts.portalOrigin}`,
      "frame-ancestors 'none'",
      "base-uri 'none'",
      "object-src 'none'",
    ].join('; ')
    app.addHook('onSend', async (request, reply) => {
      reply.header('Content-Security-Policy', csp)
      reply.header('X-Content-Type-Options', 'nosniff')
      reply.header('X-Frame-Options', 'DENY')
      reply.header('Referrer-Policy', 'no-referrer')
      reply.header('Cross-Origin-Opener-Policy', 'same-origin')
      reply.header('Cross-Origin-Resource-Policy', 'same-origin')
      reply.header('Permissions-Policy', 'camera=(), microphone=(), geolocation=(), payment=()')
      if (secure) reply.header('Strict-Transport-Security', 'max-age=31536000; includeSubDomains')
      if (!request.url.startsWith(`${base}/static/`)) reply.header('Cache-Control', 'no-store')
    })

    // ---- rendering -------------------------------------------------------------------

    const roleLevels = ROLE_LEVELS.map((level) => ({ level, ...ROLE_RULES[level] }))

    function render(reply: FastifyReply, template: string, data: Record<string, unknown>, status = 200, session: InstanceSession | null = null) {
      const flash = session?.flash ?? null
      if (session) session.flash = null
      const html = eta.render(template, {
        base,
        portalUrl: opts.portalUrl,
        session,
        rule: session ? ROLE_RULES[session.role.level] : null,
        iface: null,
        interfaces: INTERFACES,
        interfaceCodes: INTERFACE_CODES,
        flash,
        logoSrc: session?.logo ? `${base}/account-logo` : `${base}/static/default-logo.svg`,
        fmtTime,
        roleName: (level: number) => ROLE_RULES[level as keyof typeof ROLE_RULES]?.label ?? String(level),
        ...data,
      })
      return reply.code(status).type('text/html; charset=utf-8').send(html)
    }

    function message(reply: FastifyReply, status: number, title: string, text: string, session: InstanceSession | null = null, extra: Record<string, unknown> = {}) {
      return render(reply, './message', { title, text, status, ...extra }, status, session)
    }

    function refuse(request: FastifyRequest, reply: FastifyReply, refusal: Refusal) {
      request.log.warn({ code: refusal.code }, 'demo instance: sign-in refused')
      return render(reply, './refused', { title: 'Single sign-on refused', refusal }, refusal.statusCode)
    }

    // ---- sessions and guards -----------------------------------------------------------

    const currentSession = (request: FastifyRequest) => sessions.get(readCookie(request.headers.cookie, opts.cookieName))

    function signedOut(reply: FastifyReply) {
      return message(reply, 401, 'Not signed in', 'Your session in this instance has ended, or you have not opened one. Open the instance again from the MSSP Portal’s Accounts page.')
    }

    /** A page: the session, or the "not signed in" page (401). */
    function pageSession(request: FastifyRequest, reply: FastifyReply): InstanceSession | null {
      const session = currentSession(request)
      if (!session) {
        void signedOut(reply)
        return null
      }
      return session
    }

    /** A form post: a session, a same-origin request and this session's CSRF token. */
    function formSession(request: FastifyRequest, reply: FastifyReply): InstanceSession | null {
      const session = pageSession(request, reply)
      if (!session) return null
      const origin = request.headers.origin
      const body = (request.body ?? {}) as Record<string, unknown>
      // Browsers send `Origin: null` from pages reached through a cross-site redirect chain
      // (the sign-in) or served with no-referrer: then the session's token alone decides.
      if ((origin !== undefined && origin !== 'null' && origin !== opts.origin) || !checkCsrf(session, body._csrf)) {
        void message(reply, 403, 'Request refused', 'This form was not sent from this instance’s own page (its security token is missing or wrong). Go back, reload the page and try again.', session)
        return null
      }
      return session
    }

    function forbidden(reply: FastifyReply, session: InstanceSession, what: string) {
      return message(reply, 403, 'Not allowed', `Your role (${session.role.label}) may not ${what}.`, session)
    }

    function field(body: unknown, name: string, max: number): string | null {
      const value = (body as Record<string, unknown> | undefined)?.[name]
      if (typeof value !== 'string') return null
      const trimmed = value.trim()
      return trimmed.length >= 1 && trimmed.length <= max ? trimmed : null
    }

    const mayEdit = (session: InstanceSession, object: InstanceObject) => {
      const rule = ROLE_RULES[session.role.level]
      if (object.type === 'scan_schedule' && rule.manageAllScans) return true
      if (rule.settings) return true
      return rule.createOwn && object.owner === session.sub
    }

    function interfaceData(session: InstanceSession, iface: InterfaceCode) {
      const list = (type: ObjectType) =>
        store.objects(session.account.uuid, { type, iface }).map((o) => ({ ...o, ownerName: store.ownerName(o), mine: o.owner === session.sub, editable: mayEdit(session, o) }))
      return {
        iface,
        meta: INTERFACES[iface],
        title: INTERFACES[iface].title,
        scans: list('scan_schedule'),
        results: list('scan_result'),
        templates: list('scan_template'),
        dashboards: list('dashboard'),
        searches: list('saved_search'),
      }
    }

    function renderInterface(reply: FastifyReply, session: InstanceSession, iface: InterfaceCode, status = 200, extra: Record<string, unknown> = {}) {
      return render(reply, './interface', { ...interfaceData(session, iface), ...extra }, status, session)
    }

    // ---- single sign-on ----------------------------------------------------------------

    app.post('/mssp/sso', { config: HOST_ROUTE_CONFIG, bodyLimit: SSO_BODY_LIMIT }, async (request, reply) => {
      const body = request.body as Record<string, unknown> | undefined
      let signIn
      try {
        if (!request.headers['content-type']?.startsWith('application/x-www-form-urlencoded')) {
          throw new Refusal('missing_assertion', 400, 'The sign-in must be a form post (application/x-www-form-urlencoded) with one field, “assertion”.')
        }
        signIn = await verifier.signIn(body?.assertion)
      } catch (err) {
        if (err instanceof Refusal) return refuse(request, reply, err)
        throw err
      }
      // A fresh session every time (never reuse one a cookie names).
      sessions.end(readCookie(request.headers.cookie, opts.cookieName))
      store.signIn({ sub: signIn.sub, name: signIn.name, preferred_username: signIn.username }, signIn.role.level, signIn.account)
      const { token } = sessions.open({
        sub: signIn.sub,
        name: signIn.name,
        username: signIn.username,
        role: signIn.role,
        account: signIn.account,
        interface: signIn.interface,
        logo: signIn.logo,
        returnUrl: signIn.returnUrl,
        actor: signIn.actor,
      })
      request.log.info({ sub: signIn.sub, actor: signIn.actor?.sub ?? null, account: signIn.account.uuid, role: signIn.role.level, jti: signIn.jti }, 'demo instance: signed in through the MSSP Portal')
      reply.header('Set-Cookie', sessionCookie(opts.cookieName, token, { path: cookiePath, secure }))
      return reply.redirect(`${base}/${signIn.interface}`, 303)
    })

    app.post('/mssp/leave', { config: HOST_ROUTE_CONFIG, bodyLimit: FORM_BODY_LIMIT }, async (request, reply) => {
      const session = formSession(request, reply)
      if (!session) return reply
      sessions.end(readCookie(request.headers.cookie, opts.cookieName))
      reply.header('Set-Cookie', sessionCookie(opts.cookieName, '', { path: cookiePath, secure, clear: true }))
      return reply.redirect(session.returnUrl, 303)
    })

    app.post('/mssp/user-transfer', { config: HOST_ROUTE_CONFIG, bodyLimit: TRANSFER_BODY_LIMIT }, async (request, reply) => {
      const body = request.body
      try {
        const message = body && typeof body === 'object' && !Array.isArray(body) ? (body as Record<string, unknown>).message : undefined
        const transfer = await verifier.transfer(message)
        const counts = store.transfer(transfer.sub, transfer.successor)
        const ended = sessions.endAllFor(transfer.sub)
        request.log.info({ sub: transfer.sub, successor: transfer.successor.sub, jti: transfer.jti, ...counts, sessionsEnded: ended }, 'demo instance: user objects transferred')
        return reply.code(200).send(counts)
      } catch (err) {
        if (err instanceof Refusal) {
          request.log.warn({ code: err.code }, 'demo instance: user transfer refused')
          return reply.code(err.statusCode).send({ error: err.code, message: err.message })
        }
        throw err
      }
    })

    // ---- pages -------------------------------------------------------------------------

    app.get('/', { config: HOST_ROUTE_CONFIG }, async (request, reply) => {
      const session = pageSession(request, reply)
      if (!session) return reply
      return reply.redirect(`${base}/${session.interface}`, 303)
    })

    for (const iface of INTERFACE_CODES) {
      app.get(`/${iface}`, { config: HOST_ROUTE_CONFIG }, async (request, reply) => {
        const session = pageSession(request, reply)
        if (!session) return reply
        return renderInterface(reply, session, iface)
      })

      app.post(`/${iface}/scans/:id/launch`, { config: HOST_ROUTE_CONFIG, bodyLimit: FORM_BODY_LIMIT }, async (request, reply) => {
        const session = formSession(request, reply)
        if (!session) return reply
        if (!ROLE_RULES[session.role.level].launchScans) return forbidden(reply, session, 'launch scans')
        const scan = store.find(session.account.uuid, (request.params as { id: string }).id)
        if (!scan || scan.type !== 'scan_schedule' || scan.iface !== iface) return message(reply, 404, 'Not found', 'There is no such scan.', session)
        scan.status = 'Running'
        scan.lastRun = Date.now()
        session.flash = `Launched “${scan.name}”.`
        request.log.info({ sub: session.sub, actor: session.actor?.sub ?? null, scan: scan.id }, 'demo instance: scan launched')
        return reply.redirect(`${base}/${iface}`, 303)
      })

      app.post(`/${iface}/scans`, { config: HOST_ROUTE_CONFIG, bodyLimit: FORM_BODY_LIMIT }, async (request, reply) => {
        const session = formSession(request, reply)
        if (!session) return reply
        if (!ROLE_RULES[session.role.level].createOwn) return forbidden(reply, session, 'create scans')
        const name = field(request.body, 'name', 120)
        const target = field(request.body, 'target', 200)
        if (!name || !target) return renderInterface(reply, session, iface, 422, { errors: { scan: 'Give the scan a name (up to 120 characters) and a target (up to 200).' } })
        store.add(session.account.uuid, { type: 'scan_schedule', iface, name, detail: `On demand · ${target}`, owner: session.sub, ownerLabel: null, status: 'Never run', lastRun: null })
        session.flash = `Created “${name}”.`
        return reply.redirect(`${base}/${iface}`, 303)
      })

      app.get(`/${iface}/scans/:id/edit`, { config: HOST_ROUTE_CONFIG }, async (request, reply) => {
        const session = pageSession(request, reply)
        if (!session) return reply
        const scan = store.find(session.account.uuid, (request.params as { id: string }).id)
        if (!scan || scan.type !== 'scan_schedule' || scan.iface !== iface) return message(reply, 404, 'Not found', 'There is no such scan.', session)
        if (!mayEdit(session, scan)) return forbidden(reply, session, 'edit this scan')
        return render(reply, './edit-scan', { iface, title: `Edit ${scan.name}`, scan, errors: {} }, 200, session)
      })

      app.post(`/${iface}/scans/:id`, { config: HOST_ROUTE_CONFIG, bodyLimit: FORM_BODY_LIMIT }, async (request, reply) => {
        const session = formSession(request, reply)
        if (!session) return reply
        const scan = store.find(session.account.uuid, (request.params as { id: string }).id)
        if (!scan || scan.type !== 'scan_schedule' || scan.iface !== iface) return message(reply, 404, 'Not found', 'There is no such scan.', session)
        if (!mayEdit(session, scan)) return forbidden(reply, session, 'edit this scan')
        const name = field(request.body, 'name', 120)
        if (!name) return render(reply, './edit-scan', { iface, title: `Edit ${scan.name}`, scan, errors: { name: 'Give the scan a name (up to 120 characters).' } }, 422, session)
        scan.name = name
        session.flash = `Saved “${name}”.`
        return reply.redirect(`${base}/${iface}`, 303)
      })

      app.post(`/${iface}/saved-searches`, { config: HOST_ROUTE_CONFIG, bodyLimit: FORM_BODY_LIMIT }, async (request, reply) => {
        const session = formSession(request, reply)
        if (!session) return reply
        if (!ROLE_RULES[session.role.level].createOwn) return forbidden(reply, session, 'create saved searches')
        const name = field(request.body, 'name', 120)
        const query = field(request.body, 'query', 500)
        if (!name || !query) return renderInterface(reply, session, iface, 422, { errors: { search: 'Give the saved search a name (up to 120 characters) and a query (up to 500).' } })
        store.add(session.account.uuid, { type: 'saved_search', iface, name, detail: query, owner: session.sub, ownerLabel: null })
        session.flash = `Saved the search “${name}”.`
        return reply.redirect(`${base}/${iface}`, 303)
      })

      app.post(`/${iface}/dashboards`, { config: HOST_ROUTE_CONFIG, bodyLimit: FORM_BODY_LIMIT }, async (request, reply) => {
        const session = formSession(request, reply)
        if (!session) return reply
        if (!ROLE_RULES[session.role.level].createOwn) return forbidden(reply, session, 'create dashboards')
        const name = field(request.body, 'name', 120)
        if (!name) return renderInterface(reply, session, iface, 422, { errors: { dashboard: 'Give the dashboard a name (up to 120 characters).' } })
        store.add(session.account.uuid, { type: 'dashboard', iface, name, detail: 'Empty dashboard', owner: session.sub, ownerLabel: null })
        session.flash = `Created the dashboard “${name}”.`
        return reply.redirect(`${base}/${iface}`, 303)
      })
    }

    app.get('/settings', { config: HOST_ROUTE_CONFIG }, async (request, reply) => {
      const session = pageSession(request, reply)
      if (!session) return reply
      if (!ROLE_RULES[session.role.level].settings) return forbidden(reply, session, 'see the instance’s settings')
      const objects = store
        .objects(session.account.uuid, { types: SETTINGS_TYPES })
        .map((o) => ({ ...o, typeLabel: TRANSFER_TABLE[o.type].label, ownerName: store.ownerName(o), ownerColumn: o.type === 'managed_credential' || o.type === 'tag' ? 'Created By' : 'Owner' }))
      const users = [...store.users.values()].sort((a, b) => a.name.localeCompare(b.name))
      return render(
        reply,
        './settings',
        {
          title: 'Settings',
          iface: 'settings',
          objects,
          users,
          roleLevels,
          transferTable: Object.values(TRANSFER_TABLE),
          config: { portalUrl: opts.portalUrl, origin: opts.origin, basePath: base || '(none)', jwks: opts.jwks instanceof URL ? opts.jwks.href : opts.jwks ? 'a local key set' : `${opts.portalUrl}/.well-known/jwks.json` },
        },
        200,
        session,
      )
    })

    app.get('/account-logo', { config: HOST_ROUTE_CONFIG }, async (request, reply) => {
      const session = currentSession(request)
      if (!session?.logo) return reply.code(404).type('text/plain').send('No logo')
      return reply.type('image/png').header('Content-Disposition', 'inline').send(session.logo)
    })

    app.get('/static/demo-instance.css', { config: HOST_ROUTE_CONFIG }, async (_request, reply) =>
      reply.type('text/css; charset=utf-8').header('Cache-Control', 'public, max-age=3600').send(css),
    )
    app.get('/static/default-logo.svg', { config: HOST_ROUTE_CONFIG }, async (_request, reply) =>
      reply.type('image/svg+xml').header('Cache-Control', 'public, max-age=3600').send(defaultLogo),
    )

    // ---- errors ------------------------------------------------------------------------

    app.setNotFoundHandler(async (request, reply) => message(reply, 404, 'Not found', 'This instance has no such page.', currentSession(request) ?? null))

    app.setErrorHandler(async (error: Error & { statusCode?: number }, request, reply) => {
      const status = error.statusCode && error.statusCode >= 400 && error.statusCode < 500 ? error.statusCode : 500
      if (status === 500) request.log.error({ err: error }, 'demo instance: request failed')
      const text = status === 500 ? 'Something went wrong in the instance. Please try again.' : error.message
      if (request.url.startsWith(`${base}/mssp/user-transfer`)) return reply.code(status).send({ error: status === 500 ? 'internal' : 'bad_request', message: text })
      return message(reply, status, status === 500 ? 'Something went wrong' : 'Request refused', text, currentSession(request) ?? null)
    })
  }
}

/** The instance alone: a Fastify server of its own, with the plugin under `basePath`. */
export function buildDemoInstance(options: BuildDemoInstanceOptions): FastifyInstance {
  const { logger, ...opts } = options
  normalizeOptions(opts) // fail now, not at ready()
  const app = Fastify({ logger: logger ?? false, bodyLimit: SSO_BODY_LIMIT, genReqId: () => crypto.randomUUID() })
  app.register(demoInstancePlugin(opts), { prefix: opts.basePath })
  return app
}
