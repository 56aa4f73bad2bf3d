// The instance's own sessions, opened by a verified sign-in assertion. The cookie holds a
// random token; the server keeps the session under the token's SHA-256, in memory.
import crypto from 'node:crypto'
import type { InterfaceCode, Person } from './verify.ts'
import type { RoleLevel } from './roles.ts'

export const IDLE_MS = 30 * 60_000
export const ABSOLUTE_MS = 8 * 3_600_000

export interface InstanceSession {
  id: string
  sub: string
  name: string
  username: string
  role: { level: RoleLevel; label: string }
  account: { uuid: string; name: string }
  interface: InterfaceCode
  logo: Buffer | null
  returnUrl: string
  actor: Person | null
  /** This session's CSRF token, in a hidden field of every form. */
  csrf: string
  createdAt: number
  lastSeenAt: number
  flash: string | null
}

function hash(token: string): string {
  return crypto.createHash('sha256').update(token).digest('base64url')
}

export class SessionStore {
  readonly #sessions = new Map<string, InstanceSession>()
  readonly #now: () => number

  constructor(opts: { now?: () => number } = {}) {
    this.#now = opts.now ?? Date.now
  }

  /** Opens a session; returns the token for the cookie. */
  open(data: Omit<InstanceSession, 'id' | 'csrf' | 'createdAt' | 'lastSeenAt' | 'flash'>): { token: string; session: InstanceSession } {
    this.#sweep()
    const token = crypto.randomBytes(32).toString('base64url')
    const now = this.#now()
    const session: InstanceSession = { ...data, id: hash(token), csrf: crypto.randomBytes(24).toString('base64url'), createdAt: now, lastSeenAt: now, flash: null }
    this.#sessions.set(session.id, session)
    return { token, session }
  }

  /** The live session for a cookie token, touched; undefined when there is none or it ended. */
  get(token: string | undefined): InstanceSession | undefined {
    if (!token) return undefined
    const session = this.#sessions.get(hash(token))
    if (!session) return undefined
    const now = this.#now()
    if (now - session.lastSeenAt > IDLE_MS || now - session.createdAt > ABSOLUTE_MS) {
      this.#sessions.delete(session.id)
      return undefined
    }
    session.lastSeenAt = now
    return session
  }

  end(token: string | undefined): InstanceSession | undefined {
    if (!token) return undefined
    const id = hash(token)
    const session = this.#sessions.get(id)
    this.#sessions.delete(id)
    return session
  }

  /** Ends every session of a user (when the portal deletes them). */
  endAllFor(sub: string): number {
    let ended = 0
    for (const [id, s] of this.#sessions) {
      if (s.sub === sub) {
        this.#sessions.delete(id)
        ended += 1
      }
    }
    return ended
  }

  #sweep() {
    const now = this.#now()
    for (const [id, s] of this.#sessions) {
      if (now - s.lastSeenAt > IDLE_MS || now - s.createdAt > ABSOLUTE_MS) this.#sessions.delete(id)
    }
  }
}

export function checkCsrf(session: InstanceSession, submitted: unknown): boolean {
  if (typeof submitted !== 'string') return false
  const a = Buffer.from(submitted)
  const b = Buffer.from(session.csrf)
  return a.length === b.length && crypto.timingSafeEqual(a, b)
}

/** Reads one cookie from the Cookie header (no cookie plugin: the host may have its own). */
export function readCookie(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined
  for (const part of header.split(';')) {
    const eq = part.indexOf('=')
    if (eq < 0) continue
    if (part.slice(0, eq).trim() === name) {
      const value = part.slice(eq + 1).trim()
      return /^[A-Za-z0-9_-]{1,128}$/.test(value) ? value : undefined
    }
  }
  return undefined
}

export function sessionCookie(name: string, value: string, opts: { path: string; secure: boolean; clear?: boolean }): string {
  const parts = [`${name}=${opts.clear ? '' : value}`, `Path=${opts.path}`, 'HttpOnly', 'SameSite=Lax']
  if (opts.secure) parts.push('Secure')
  if (opts.clear) parts.push('Max-Age=0')
  return parts.join('; ')
}
