import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod'

// `/mssp/accounts` and `/filters/mssp/accounts` API routes. Filled in by the accounts API work.
const routes: FastifyPluginAsyncZod = async () => {}

export default routes
