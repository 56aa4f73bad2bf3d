import type { FastifyPluginAsync } from 'fastify'

// The Accounts page: the default page after sign-in. The accounts issue fills the table.
const routes: FastifyPluginAsync = async (app) => {
  app.get('/accounts', { config: { access: 'user' } }, async (_request, reply) =>
    reply.render('accounts/index', { title: 'Accounts', accounts: [] }, { fragment: 'accounts/_table' }),
  )
}

export default routes
