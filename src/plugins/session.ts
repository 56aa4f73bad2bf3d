import fp from 'fastify-plugin'
import secureSession from '@fastify/secure-session'
import type { FastifyReply, FastifyRequest } from 'fastify'
import type { Kysely } from 'kysely'
import type { Database, Session, User } from '../db/schema.ts'
import { ADMINISTRATOR } from '../lib/roles.ts'
import * as repo from '../areas/auth/sessions.ts'
import { hmac, randomToken, sha256 } from '../lib/tokens.ts'
import type { Actor, Origin } from '../lib/actor.ts'

declare module '@fastify/secure-session' {
  interface SessionData {
    /** The session token; its sha256 is the sessions row's id. */
    sid: string
    /** An anonymous visitor's id, binding the CSRF token of the sign-in forms. */
    anon: string
  }
}

const TOUCH_INTERVAL_MS = 60_000

/**
 * Over https the cookie carries the `__Host-` prefix: browsers then accept it only with
 * Secure, Path=/ and no Domain, so no other host (a subdomain, a plain-http page) can set it.
 */
export function sessionCookieName(baseUrl: string): string {
  return baseUrl.startsWith('https://') ? '__Host-mssp_session' : 'mssp_session'
}

/**
 * Server-side sessions: the encrypted cookie holds only a random token; the row (keyed by
 * the token's hash) holds the user, the times and the Remember Me choice.
 */
export default fp(async (app) => {
  const secure = app.config.baseUrl.startsWith('https://')
  // The cookie's own validity (secure-session's `expiry`, 24 hours unless given) must outlast
  // the longest session, or a session longer than a day would end early; the session row
  // decides when it ends.
  const cookieExpirySeconds = app.config.sessionMaxHours * 3600 + 60
  await app.register(secureSession, {
    key: app.keys.session,
    cookieName: sessionCookieName(app.config.baseUrl),
    expiry: cookieExpirySeconds,
    // No maxAge: a browser-session cookie, with or without Remember Me (as the guide says).
    cookie: { path: '/', httpOnly: true, sameSite: 'lax', secure },
  })

  const idleMs = app.config.sessionIdleMinutes * 60_000

  app.decorateRequest('auth', null)
  app.decorateRequest('sessionEnded', false)

  app.decorateRequest('csrfToken', function (this: FastifyRequest) {
    const sid = this.session.get('sid')
    if (sid && this.auth) return hmac(app.keys.session, `csrf:${sid}`)
    let anon = this.session.get('anon')
    if (!anon) {
      anon = randomToken(16)
      this.session.set('anon', anon)
    }
    return hmac(app.keys.session, `csrf-anon:${anon}`)
  })

  // One indexed lookup per request: the session row (by the token's hash) with its user.
  app.addHook('onRequest', async (request) => {
    const token = request.session.get('sid')
    if (!token) return
    const id = sha256(token)
    const found = await repo.findSessionWithUser(app.db, id)
    const now = Date.now()
    const expired =
      !found ||
      found.user.enabled !== 1 ||
      found.session.expires_at <= now ||
      (found.session.remember_me !== 1 && now - found.session.last_seen_at > idleMs)
    if (expired) {
      request.session.set('sid', undefined)
      request.sessionEnded = true
      if (found) await repo.deleteSession(app.db, id)
      return
    }
    request.auth = { via: 'session', user: found.user, session: found.session, has2fa: found.has2fa, assistedBy: null }
    if (now - found.session.last_seen_at >= TOUCH_INTERVAL_MS) touch(id, now)
    if (found.session.assist_user_id !== null) await applyAssist(request, found.user, found.session)
  })

  // Sessions whose last-seen write is under way: one write per session at a time, however many
  // requests arrive while it waits.
  const touching = new Set<string>()
  /**
   * Records that the session was just used, best-effort: the page does not wait for it and
   * cannot fail because of it (a SQLite lock or a full disk would otherwise hold each page
   * view for seconds, then answer 503). A touch that fails leaves last_seen_at as it was, so
   * the next request tries again; the idle limit is many touch intervals long.
   */
  function touch(id: string, now: number): void {
    if (touching.has(id)) return
    touching.add(id)
    repo
      .touchSession(app.db, id, now)
      .catch((err: unknown) => app.log.debug({ err }, 'session last-seen not recorded'))
      .finally(() => touching.delete(id))
  }
})

/**
 * An Administrator assisting a user acts as that user. Assisting ends by itself after the
 * time limit, when the user is disabled, or when the Administrator is no longer one.
 */
async function applyAssist(request: FastifyRequest, admin: User, session: Session): Promise<void> {
  const app = request.server
  const assisted = await repo.findUserById(app.db, session.assist_user_id!)
  const expired = session.assist_started_at! + app.config.assistMaxMinutes * 60_000 <= Date.now()
  if (!assisted || assisted.enabled !== 1 || admin.role !== ADMINISTRATOR || expired) {
    const reason = expired ? 'time limit' : !assisted ? 'user deleted' : assisted.enabled !== 1 ? 'user disabled' : 'no longer an Administrator'
    // Recorded once, by the request that ended it; the Administrator is the actor.
    if (await repo.endAssist(app.db, session.id)) {
      await repo.recordAssistEnded(
        app.db,
        originOf(request),
        admin,
        assisted ? { type: 'user', id: assisted.uuid, name: assisted.username } : { type: 'user', id: session.assist_user_id! },
        { reason, ...(expired ? { minutes: app.config.assistMaxMinutes } : {}) },
      )
    }
    session.assist_user_id = null
    session.assist_started_at = null
    const message = expired ? `Assisting ended after ${app.config.assistMaxMinutes} minutes.` : 'Assisting ended.'
    await repo.setSessionFlash(app.db, session.id, message)
    session.flash = message
    return
  }
  request.auth = { via: 'session', user: assisted, session, has2fa: true, assistedBy: admin }
}

/** Starts a new session for the user: a fresh id (and so a fresh CSRF token). */
export const PENDING_2FA_MS = 10 * 60_000

/**
 * Starts a new session for the user: a fresh id (and so a fresh CSRF token). A session that
 * still owes its second factor lasts only as long as a sign-in code.
 */
export async function startSession(
  request: FastifyRequest,
  user: User,
  rememberMe: boolean,
  db: Kysely<Database> = request.server.db,
  opts: { pending2fa?: boolean } = {},
): Promise<string> {
  const app = request.server
  const token = randomToken(32)
  const now = Date.now()
  const id = sha256(token)
  await repo.insertSession(db, {
    id,
    pending_2fa: opts.pending2fa ? 1 : 0,
    user_id: user.id,
    remember_me: rememberMe ? 1 : 0,
    created_at: now,
    last_seen_at: now,
    expires_at: now + (opts.pending2fa ? PENDING_2FA_MS : app.config.sessionMaxHours * 3_600_000),
    ip: request.ip,
    user_agent: (request.headers['user-agent'] ?? '').slice(0, 300),
  })
  request.session.set('anon', undefined)
  request.session.set('sid', token)
  return id
}

export async function endSession(request: FastifyRequest): Promise<void> {
  const token = request.session.get('sid')
  if (token) await repo.deleteSession(request.server.db, sha256(token))
  request.session.delete()
  request.auth = null
}

/** Leaves a one-time success message for the next page the user sees. */
export async function flash(request: FastifyRequest, message: string): Promise<void> {
  if (request.auth?.session) await repo.setSessionFlash(request.server.db, request.auth.session.id, message)
}

/** Reads and clears the pending message (called by the page renderer). */
export async function takeFlash(request: FastifyRequest): Promise<string | null> {
  const session = request.auth?.session
  const message = session?.flash ?? null
  if (message && session) {
    await repo.setSessionFlash(request.server.db, session.id, null)
    session.flash = null
  }
  return message
}

export function isHtmx(request: FastifyRequest): boolean {
  return request.headers['hx-request'] === 'true'
}

/** A redirect that works with and without htmx. */
export function redirect(request: FastifyRequest, reply: FastifyReply, url: string) {
  if (isHtmx(request)) return reply.header('HX-Redirect', url).code(204).send()
  return reply.redirect(url, 303)
}

/** The signed-in user of the request as services see them (see lib/actor.ts). */
export function actorOf(request: FastifyRequest): Actor {
  const auth = request.auth
  if (!auth) throw new Error('actorOf: the route let an anonymous request through')
  return { user: auth.user, assistedBy: auth.assistedBy, ip: request.ip }
}

/** Where an anonymous request came from, for services that audit sign-in steps. */
export function originOf(request: FastifyRequest): Origin {
  return { ip: request.ip }
}
