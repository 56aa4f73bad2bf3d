import t from 'tap'
import type { LightMyRequestResponse } from 'fastify'
import { PASSWORD, dialects } from '../helper.ts'
import { buildGeneratedApp } from './app.ts'
import { hashPassword } from '../../src/lib/passwords.ts'
import { type Actor, type World, seedWorld } from './actors.ts'
import { type OpenApiDocument, operationFor } from './bodies.ts'
import { type BodyKind, type Variant, buildRequest, describe, expectFor, impersonationHonoured, isAccountScoped } from './matrix.ts'
import { UNSAFE, openApiPath, routeEntries } from './route-table.ts'

// Every registered route (read from the app's route table: a new route is in the matrix
// without anyone listing it), called by every kind of caller, with valid and malformed
// bodies; each answer is checked against what the route's declared access allows.
// SQLite runs every route; PostgreSQL (with TEST_DATABASE_URL) the API routes.

const AUDITED_CELLS = 2217

// The dialects run side by side: PostgreSQL's time is mostly spent waiting on its server.
t.jobs = dialects.length
for (const dialect of dialects) {
  t.test(`${dialect}: authorization matrix`, async (t) => {
    const started = Date.now()
    const { app } = await buildGeneratedApp(t, dialect)
    const passwordHash = await hashPassword(PASSWORD)
    const doc = (await app.inject({ method: 'GET', url: '/api/openapi.json' })).json() as OpenApiDocument
    // Reads first, while the database holds only the shared world (lists stay short).
    const all = routeEntries(app).filter((r) => dialect === 'sqlite' || r.api)
    const routes = [...all.filter((r) => !UNSAFE.has(r.method)), ...all.filter((r) => UNSAFE.has(r.method))]
    t.ok(routes.length > (dialect === 'sqlite' ? 100 : 30), `${routes.length} routes from the route table`)
    // Reads share one world; each unsafe route gets a fresh one per body kind, so that what
    // one cell changes (a deleted logo, a session ended) cannot decide another cell's answer.
    const shared = await seedWorld(app, passwordHash)
    // A request with X-ApiKeys to a page's path reaches the API copy at that path instead.
    const shadowed = new Set(routes.filter((r) => r.keysOnly).map((r) => `${r.method} ${r.url}`))
    let cells = 0

    for (const route of routes) {
      const unsafe = UNSAFE.has(route.method)
      const op = route.api ? operationFor(doc, openApiPath(route), route.method) : undefined
      const variants: Variant[] = isAccountScoped(route) ? ['assigned', 'unassigned'] : [null]
      const bodies: BodyKind[] = unsafe ? ['valid', 'wrong-types', 'unparsable'] : ['none']
      const failures: string[] = []
      for (const body of bodies) {
        const world: World = unsafe ? await seedWorld(app, passwordHash) : shared
        const callers = world.actors.filter((a) =>
          (route.keysOnly ? a.viaKey : !(a.viaKey && shadowed.has(`${route.method} ${route.url}`))) && (!a.headers['hx-request'] || !route.api))
        // Without a CSRF token first (refused, changing nothing), then with it.
        const plan: Array<{ actor: Actor; variant: Variant; csrf: boolean }> = []
        if (unsafe && route.csrf && !route.keysOnly && body === 'valid') {
          for (const actor of callers.filter((a) => !a.viaKey && a.csrf)) {
            for (const variant of variants) plan.push({ actor, variant, csrf: false })
          }
        }
        for (const actor of callers) for (const variant of variants) plan.push({ actor, variant, csrf: true })

        const plainAdmin = new Map<Variant, LightMyRequestResponse>()
        for (const { actor, variant, csrf } of plan) {
          const expected = expectFor(route, actor, variant, body, csrf)
          const res = await app.inject(buildRequest(route, op, world, actor, variant, body, csrf))
          cells += 1
          const cell = `${actor.name}${variant ? `, ${variant} account` : ''}${body === 'none' ? '' : `, ${body} body`}${csrf ? '' : ', no CSRF token'}`
          if (!expected.ok(res)) failures.push(`${cell}: expected ${expected.label}, got ${describe(res)}`)
          if (actor.kind === 'session' && actor.role === 64 && csrf) plainAdmin.set(variant, res)
          if (actor.kind === 'impersonate-on-cookie') {
            const honoured = impersonationHonoured(actor, res, route.method === 'GET' ? plainAdmin.get(variant) : undefined)
            if (honoured) failures.push(`${cell}: X-Impersonate on a session cookie was honoured: ${honoured}`)
          }
        }
      }
      t.same(failures, [], `${route.method} ${route.url}${route.keysOnly ? ' (with X-ApiKeys)' : ''} [${route.access}]`)
    }
    t.comment(`${dialect}: ${cells} cells over ${routes.length} routes in ${((Date.now() - started) / 1000).toFixed(1)} s`)
    if (dialect === 'sqlite') t.ok(cells >= AUDITED_CELLS, `at least as many cells as the audit ran (${AUDITED_CELLS}): ${cells}`)
    else t.ok(cells > 0, `${dialect}: the API routes, ${cells} cells`)
  })
}
