import type { User } from '../db/schema.ts'

/** Where a request came from: the client address as the proxy settings resolve it. */
export interface Origin {
  ip: string | null
}

/**
 * Who acts: the signed-in user (while an Administrator assists, the assisted user, so every
 * rule applies as to them), the Administrator assisting them, and from where. Services take
 * this instead of a request, so they know no HTTP.
 */
export interface Actor extends Origin {
  user: User
  assistedBy: User | null
}

/** A browser signing in: where from, and what its session row records of it. */
export interface Client extends Origin {
  userAgent: string
}
