import type { FastifyPluginAsync } from 'fastify'

// The Logos pages (Administrator). Filled in by the logos work.
const routes: FastifyPluginAsync = async () => {}

export default routes
