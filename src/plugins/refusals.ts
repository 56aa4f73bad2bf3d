import fp from 'fastify-plugin'
import type { FastifyRequest } from 'fastify'
import { CsrfError, TwoFactorSetupRequiredError } from '../lib/errors.ts'

// Refused requests in the audit log, summed up: an attack (a scan of forbidden pages, forged
// forms, guessed API keys, a flood into the rate limits) shows as one `security.refusals`
// event per kind and minute, with counts by client address, instead of one event per
// request (which would flood the log, and let a flood of refusals bury everything else).
//
// The first refusal of a kind opens a window; when it closes (REFUSAL_WINDOW_MS later) its
// counts become one event. Counts are per process and in memory; closing the app writes
// what is counted so far.

export type RefusalKind = 'forbidden' | 'csrf' | 'api_key' | 'rate_limited'
export const REFUSAL_WINDOW_MS = 60_000
/** Addresses counted one by one per window; any more are summed as others. */
const MAX_ADDRESSES = 1000
/** Addresses named in the event, most refused first. */
const TOP_ADDRESSES = 5

declare module 'fastify' {
  interface FastifyInstance {
    refusals: {
      /** Writes the open windows' counts now (tests, shutdown). */
      flush(): Promise<void>
    }
  }
}

interface Window {
  firstAt: number
  lastAt: number
  count: number
  byAddress: Map<string, number>
  /** Refusals from addresses beyond MAX_ADDRESSES. */
  others: number
  timer: NodeJS.Timeout
}

/** The kind of refusal a response is, or null when it is none. */
function refusalKind(request: FastifyRequest, status: number, error: Error | undefined): RefusalKind | null {
  if (status === 429) return 'rate_limited'
  // A wrong or unknown key; a valid key on a page (API only) is no guess.
  if (status === 401 && 'x-apikeys' in request.headers && request.auth?.via !== 'api-key') return 'api_key'
  if (status === 403) {
    if (error instanceof CsrfError) return 'csrf'
    // The portal asking a user to set up two-factor authentication refuses nothing.
    if (error instanceof TwoFactorSetupRequiredError) return null
    return 'forbidden'
  }
  return null
}

/** One window's summary, as the audit log records it. */
export interface RefusalSummary {
  action: 'security.refusals'
  actor: null
  target: { type: 'refusal'; id: RefusalKind }
  fields: Record<string, string | number>
}

export interface RefusalsOptions {
  /** Records a summary in the audit log (app.ts passes the audit area's audit()). */
  record(summary: RefusalSummary): Promise<void>
  windowMs?: number
}

export default fp<RefusalsOptions>(async (app, opts) => {
  const windowMs = opts.windowMs ?? REFUSAL_WINDOW_MS
  const windows = new Map<RefusalKind, Window>()
  const errors = new WeakMap<FastifyRequest, Error>()

  async function write(kind: RefusalKind, w: Window): Promise<void> {
    const ranked = [...w.byAddress].sort((a, b) => b[1] - a[1])
    const top = ranked.slice(0, TOP_ADDRESSES).map(([ip, n]) => `${ip} ×${n}`)
    if (ranked.length > TOP_ADDRESSES || w.others) top.push('…')
    try {
      await opts.record({
        action: 'security.refusals',
        actor: null,
        target: { type: 'refusal', id: kind },
        fields: {
          kind,
          count: w.count,
          addresses: ranked.length + (w.others ? 1 : 0),
          top: top.join(', '),
          ...(w.others ? { other_addresses_count: w.others } : {}),
          first: new Date(w.firstAt).toISOString(),
          last: new Date(w.lastAt).toISOString(),
        },
      })
    } catch (err) {
      app.log.warn({ err, kind, count: w.count }, 'the refusal summary could not be recorded')
    }
  }

  function close(kind: RefusalKind): Promise<void> {
    const w = windows.get(kind)
    if (!w) return Promise.resolve()
    windows.delete(kind)
    clearTimeout(w.timer)
    return write(kind, w)
  }

  function count(kind: RefusalKind, ip: string): void {
    const now = Date.now()
    let w = windows.get(kind)
    if (!w) {
      const timer = setTimeout(() => void close(kind), windowMs)
      timer.unref()
      w = { firstAt: now, lastAt: now, count: 0, byAddress: new Map(), others: 0, timer }
      windows.set(kind, w)
    }
    w.count++
    w.lastAt = now
    const seen = w.byAddress.get(ip)
    if (seen !== undefined) w.byAddress.set(ip, seen + 1)
    else if (w.byAddress.size < MAX_ADDRESSES) w.byAddress.set(ip, 1)
    else w.others++
  }

  app.decorate('refusals', { flush: () => Promise.all([...windows.keys()].map(close)).then(() => {}) })

  // The error behind a response, for telling a CSRF failure from another 403.
  app.addHook('onError', (request, _reply, error, done) => {
    errors.set(request, error)
    done()
  })
  app.addHook('onResponse', (request, reply, done) => {
    const kind = refusalKind(request, reply.statusCode, errors.get(request))
    if (kind) count(kind, request.ip)
    done()
  })
  // Before the database closes (its onClose hook was added before this plugin's).
  app.addHook('onClose', async () => {
    await app.refusals.flush()
  })
})
