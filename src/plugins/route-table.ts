import fp from 'fastify-plugin'
import type { RouteOptions } from 'fastify'

declare module 'fastify' {
  interface FastifyInstance {
    /**
     * Every route's options as registered (read once the app is built, when later onRoute
     * hooks have added `config.api` and constraints): the generated authorization and fuzz
     * suites enumerate it, so that no hand-kept list can forget a route.
     */
    routeTable: RouteOptions[]
  }
}

export default fp(async function routeTable(app) {
  const routes: RouteOptions[] = []
  app.decorate('routeTable', routes)
  app.addHook('onRoute', (route) => void routes.push(route))
})
