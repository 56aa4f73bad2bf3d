import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod'

// `/mssp/logos` API routes. Filled in by the logos work.
const routes: FastifyPluginAsyncZod = async () => {}

export default routes
