import type { FastifyInstance } from 'fastify'
import { countUsers } from '../areas/auth/repository.ts'
import { createAdministrator, createSetupLink } from '../areas/auth/service.ts'
import { ValidationError } from '../lib/errors.ts'

/**
 * First start on an empty database: create the Administrator from MSSP_ADMIN_* when set
 * (unattended installs), or print a one-time setup link to the console. Never an account
 * with a known password.
 */
export async function bootstrapFirstAdministrator(app: FastifyInstance, print: (line: string) => void): Promise<void> {
  if ((await countUsers(app.db)) > 0) return
  const { adminUsername, adminPassword } = app.config
  if (adminUsername && adminPassword) {
    try {
      const user = await createAdministrator(app.db, { name: 'Administrator', username: adminUsername, email: null, password: adminPassword }, { onlyIfNoUsers: true })
      app.log.info({ username: user.username }, 'first Administrator created from MSSP_ADMIN_USERNAME')
    } catch (err) {
      // Another process starting on the same empty database created it first: fine.
      if ((await countUsers(app.db)) > 0) {
        app.log.info('first Administrator already created by another process')
        return
      }
      if (err instanceof ValidationError) {
        const details = Object.entries(err.fieldErrors).map(([k, v]) => `${k === 'username' ? 'MSSP_ADMIN_USERNAME' : 'MSSP_ADMIN_PASSWORD'}: ${v}`)
        throw new Error(`Cannot create the first Administrator:\n  ${details.join('\n  ') || err.message}`)
      }
      throw err
    }
    return
  }
  const link = await createSetupLink(app)
  if (link) {
    print('')
    print('  No users yet. Open this one-time link to create the first Administrator')
    print('  (valid for 24 hours; restarting prints a new one):')
    print(`  ${link}`)
    print('')
  }
}
