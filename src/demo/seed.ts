import crypto from 'node:crypto'
import type { FastifyInstance } from 'fastify'
import { approveDomain, insertUser } from '../areas/auth/repository.ts'
import { hashPassword } from '../lib/passwords.ts'
import { checkPassword } from '../lib/password-policy.ts'
import { uuid } from '../lib/tokens.ts'

// The demo's data, one module that each area extends with its own (accounts, logos, ...).

export const DEMO_DOMAIN = 'northwind-mssp.example'

const DEMO_USERS = [
  { username: `priya.raman@${DEMO_DOMAIN}`, name: 'Priya Raman', role: 64 },
  { username: `marcus.oyelaran@${DEMO_DOMAIN}`, name: 'Marcus Oyelaran', role: 40 },
  { username: `sofia.lindqvist@${DEMO_DOMAIN}`, name: 'Sofia Lindqvist', role: 32 },
  { username: `daniel.okafor@${DEMO_DOMAIN}`, name: 'Daniel Okafor', role: 24 },
  { username: `hana.kobayashi@${DEMO_DOMAIN}`, name: 'Hana Kobayashi', role: 16 },
  { username: `tomas.ferreira@${DEMO_DOMAIN}`, name: 'Tomás Ferreira', role: 32, disabled: true },
  { username: `grace.mbeki@${DEMO_DOMAIN}`, name: 'Grace Mbeki', role: 16, locked: true },
] as const

/** A password that satisfies the self-service policy, for the demo's printed credentials. */
export function generateDemoPassword(): string {
  for (;;) {
    const candidate = `Demo-${crypto.randomBytes(9).toString('base64url')}-7a`
    if (!checkPassword(candidate, 'self-service')) return candidate
  }
}

export interface DemoCredentials {
  administrator: string
  password: string
  users: Array<{ username: string; name: string; role: number; note?: string }>
}

export async function seedDemo(app: FastifyInstance, opts: { adminUsername?: string; adminPassword?: string } = {}): Promise<DemoCredentials> {
  const password = opts.adminPassword ?? generateDemoPassword()
  const passwordHash = await hashPassword(password)
  const now = Date.now()
  const day = 86_400_000
  const users: DemoCredentials['users'] = []
  const list = opts.adminUsername
    ? [{ username: opts.adminUsername.toLowerCase(), name: 'Demo Administrator', role: 64 }, ...DEMO_USERS.slice(1)]
    : DEMO_USERS
  for (const [i, u] of list.entries()) {
    await approveDomain(app.db, u.username.split('@')[1]!, now)
    const disabled = 'disabled' in u && u.disabled
    const locked = 'locked' in u && u.locked
    await insertUser(app.db, {
      uuid: uuid(),
      username: u.username,
      name: u.name,
      email: u.username,
      password_hash: passwordHash,
      role: u.role,
      enabled: disabled ? 0 : 1,
      failed_login_count: locked ? 7 : 0,
      failed_login_total: locked ? 9 : i,
      locked_until: locked ? now + 60 * 60_000 : null,
      last_login_at: disabled ? now - 40 * day : now - (i + 1) * 3_600_000 * 7,
      last_failed_login_at: locked ? now - 120_000 : i % 2 ? now - (i + 2) * day : null,
      last_login_attempt_at: locked ? now - 120_000 : now - (i + 1) * 3_600_000 * 7,
      password_changed_at: now - 30 * day,
      created_at: now - (90 - i) * day,
      updated_at: now - 10 * day,
    })
    users.push({ username: u.username, name: u.name, role: u.role, note: disabled ? 'disabled' : locked ? 'locked' : undefined })
  }
  return { administrator: list[0]!.username, password, users }
}
