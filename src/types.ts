import type { Kysely } from 'kysely'
import type { Config } from './config.ts'
import type { Database, Session, User } from './db/schema.ts'
import type { Dialect } from './db/index.ts'
import type { Messenger } from './areas/outbox/service.ts'
import type SQLite from 'better-sqlite3'

/**
 * public: anyone; user / administrator: a fully signed-in user of that role;
 * pending-2fa: a session that passed the password and still owes its second factor;
 * two-factor-setup: a signed-in user whom the require-2FA setting sends to setup first.
 */
export type Access = 'public' | 'user' | 'administrator' | 'pending-2fa' | 'two-factor-setup'

export interface AuthContext {
  user: User
  /** The browser session; null when the request is authenticated by API keys. */
  session: Session | null
  via: 'session' | 'api-key'
  /** The user has a second factor configured (SMS or authenticator app). */
  has2fa: boolean
  /**
   * While an Administrator assists a user, `user` is the assisted user (every rule applies
   * as to them) and `assistedBy` is the Administrator; null otherwise.
   */
  assistedBy: User | null
}

/**
 * What services use of the running portal besides the actor and the database. A
 * FastifyInstance is one, so routes pass `request.server`; services need not know Fastify.
 */
export interface Portal {
  config: Config
  db: Kysely<Database>
  dialect: Dialect
  messenger: Messenger
  /**
   * session: encrypts the cookie and derives CSRF tokens (rotating it signs everyone out).
   * secrets: keys the API-key hashes and encrypts TOTP secrets (must stay stable).
   */
  keys: { session: Buffer; secrets: Buffer }
}

declare module 'fastify' {
  interface FastifyInstance extends Portal {
    /** The SQLite connection under `db` (null on PostgreSQL). */
    sqlite: SQLite.Database | null
  }
  interface FastifyRequest {
    auth: AuthContext | null
    csrfToken(): string
    /** True when this request's session had just ended (idle, expired, disabled user). */
    sessionEnded: boolean
  }
  interface FastifyContextConfig {
    /** Who may call the route; every route must say (see plugins/authorization.ts). */
    access?: Access
    /** Unsafe methods check a CSRF token unless this is false. */
    csrf?: boolean
    /** Set on API routes: only they accept X-ApiKeys (pages need a browser session) and, with keys, X-Impersonate. */
    api?: boolean
  }
}
