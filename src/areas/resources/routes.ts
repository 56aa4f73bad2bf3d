import type { FastifyPluginAsync } from 'fastify'
import { z } from 'zod'
import { NotFoundError } from '../../lib/errors.ts'

const topicParams = z.object({ topic: z.string() })

const TOPICS: Record<string, string> = {
  'getting-started': 'Getting started',
  accounts: 'Accounts',
  users: 'Users and roles',
  api: 'REST API',
  'release-notes': 'What is new',
}

// The Resource Center's documentation, served by the portal itself (works offline).
const routes: FastifyPluginAsync = async (app) => {
  app.get('/help/:topic', { config: { access: 'user' } }, async (request, reply) => {
    const { topic } = topicParams.parse(request.params)
    const title = Object.hasOwn(TOPICS, topic) ? TOPICS[topic] : undefined
    if (!title) throw new NotFoundError()
    return reply.render(`resources/${topic}`, { title })
  })
}

export default routes
