import type { FastifyPluginAsync } from 'fastify'

// CSV export and import of accounts. Filled in by the accounts CSV work.
const routes: FastifyPluginAsync = async () => {}

export default routes
