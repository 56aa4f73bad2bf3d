import type { Kysely } from 'kysely'
import type { Config } from './config.ts'
import type { Database, Session, User } from './db/schema.ts'
import type { Dialect } from './db/index.ts'
import type { Messenger } from './lib/messages.ts'

export type Access = 'public' | 'user' | 'administrator'

export interface AuthContext {
  user: User
  /** The browser session; null when the request is authenticated by API keys. */
  session: Session | null
  via: 'session' | 'api-key'
}

declare module 'fastify' {
  interface FastifyInstance {
    config: Config
    db: Kysely<Database>
    dialect: Dialect
    messenger: Messenger
    keys: { session: Buffer }
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
  }
}
