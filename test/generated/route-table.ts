import type { FastifyInstance } from 'fastify'
import type { Access } from '../../src/types.ts'

/** One registered route, as the generated suites see it (read from app.routeTable). */
export interface RouteEntry {
  method: string
  url: string
  access: Access
  /** An API route (JSON answers, accepts X-ApiKeys). */
  api: boolean
  /** The unprefixed API copy, reached only by requests carrying X-ApiKeys. */
  keysOnly: boolean
  /** Unsafe methods check a CSRF token (browser requests). */
  csrf: boolean
  /** The route reads multipart/form-data (its config carries multipartOptions). */
  multipart: boolean
  /** `:name` parameters and `*`, in path order. */
  params: string[]
}

export const UNSAFE = new Set(['POST', 'PUT', 'PATCH', 'DELETE'])

/**
 * Every route of the app, from the route table the app keeps while it registers them: pages,
 * htmx fragments, `/api` and the unprefixed copies. HEAD routes (Fastify's copies of GETs)
 * are left out: they answer as their GET does.
 */
export function routeEntries(app: FastifyInstance): RouteEntry[] {
  const seen = new Set<string>()
  const entries: RouteEntry[] = []
  for (const route of app.routeTable) {
    const methods = Array.isArray(route.method) ? route.method : [route.method]
    const config = (route.config ?? {}) as { access?: Access; api?: boolean; csrf?: boolean; multipartOptions?: unknown }
    const keysOnly = Boolean((route.constraints as { apiKeys?: string } | undefined)?.apiKeys)
    for (const method of methods) {
      if (method === 'HEAD' || method === 'OPTIONS') continue
      const key = `${method} ${route.url} ${keysOnly}`
      if (seen.has(key)) continue
      seen.add(key)
      if (!config.access) throw new Error(`${key} has no config.access`)
      entries.push({
        method,
        url: route.url,
        access: config.access,
        api: config.api === true,
        keysOnly,
        csrf: config.csrf !== false,
        multipart: config.multipartOptions !== undefined,
        params: route.url.split('/').filter((s) => s.startsWith(':') || s === '*').map((s) => (s === '*' ? '*' : s.slice(1))),
      })
    }
  }
  return entries
}

/** The path segment just before a parameter (what kind of object it names). */
export function segmentBefore(url: string, param: string): string {
  const parts = url.split('/')
  const at = parts.findIndex((s) => s === (param === '*' ? '*' : `:${param}`))
  return at > 0 ? parts[at - 1]! : ''
}

/** The route's OpenAPI path (`/api/users/{id}`), also for an unprefixed copy. */
export function openApiPath(entry: Pick<RouteEntry, 'url' | 'keysOnly'>): string {
  const url = entry.keysOnly ? `/api${entry.url}` : entry.url
  return url.replace(/:(\w+)/g, '{$1}')
}
