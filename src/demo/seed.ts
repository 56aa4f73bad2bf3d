import crypto from 'node:crypto'
import type { FastifyInstance } from 'fastify'
import { approveDomain, insertUser } from '../areas/auth/repository.ts'
import { hashPassword } from '../lib/passwords.ts'
import { checkPassword } from '../lib/password-policy.ts'
import { uuid } from '../lib/tokens.ts'
import { insertAccount, replaceAssignments } from '../areas/accounts/repository.ts'
import { seedDemoLogos } from '../areas/logos/service.ts'
import { seedDemoAuditHistory } from '../areas/audit/repository.ts'

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
  await seedAccounts(app, list[0]!.username)
  await seedDemoAuditHistory(
    app.db,
    await app.db.selectFrom('users').selectAll().orderBy('id').execute(),
    await app.db.selectFrom('accounts').select(['uuid', 'container_name']).orderBy('id').execute(),
  )
  return { administrator: list[0]!.username, password, users }
}

const CUSTOMERS: Array<[string, string, string, number, number, number | null, string]> = [
  // name, apps, region, assets, limit, days to expiry, notes
  ['Acme Logistics GmbH', 'vm,was', 'EU', 1840, 2000, 210, 'Primary contact: Jana Weber (IT Security). Quarterly review in March.'],
  ['Bluefin Capital Partners', 'vm', 'US', 512, 500, 45, 'Over licence since the October acquisition; renewal quote sent.'],
  ['Cedar Valley Health System', 'vm,was,cs', 'US', 9420, 10000, 330, 'HIPAA scope. Scan window Sundays 01:00-05:00 CT.'],
  ['Delta Freight Lines', 'vm', 'US', 760, 1000, 12, 'Renewal due this month: chase procurement.'],
  ['Evergreen Municipal Utilities', 'vm', 'US', 2210, 2500, -8, 'Licence expired; customer confirmed PO is in approval.'],
  ['Fjord Maritime AS', 'vm,cs', 'EU', 430, 600, 400, 'Container registry onboarding planned for Q2.'],
  ['Golden Gate Dental Group', 'vm', 'US', 95, 100, 180, ''],
  ['Harbor & Pine Insurance', 'vm,was', 'US', 3100, 3000, 95, 'Ticket #44812 open about agent re-linking.'],
  ['Ironbridge Manufacturing', 'vm', 'EU', 1450, 2000, 260, 'OT network excluded from active scans.'],
  ['Juniper Retail Holdings', 'vm,was', 'AP', 5200, 6000, 150, 'Web apps: storefront and loyalty portal.'],
  ['Kestrel Aerospace Components', 'vm,cs', 'US', 890, 1000, 28, 'ITAR: US-based staff only.'],
  ['Lumen Education Trust', 'vm', 'EU', 2600, 3000, 365, 'Schools on a shared tenant; see site list in notes archive.'],
  ['Maple Leaf Credit Union', 'vm', 'CA', 640, 750, 75, ''],
  ['Northstar Telecom', 'vm,was,cs', 'US', 15800, 20000, 500, 'Largest account. Dedicated TAM.'],
  ['Orchid Biotech Labs', 'was', 'AP', 0, 25, 220, 'Web Application Scanning only.'],
  ['Pacific Rim Shipping', 'vm', 'AP', 1120, 1000, -30, 'Expired and over limit: escalate to account manager.'],
  ['Quarry Stone Builders', 'vm', 'US', 210, 500, 300, ''],
  ['Riverside County Library', 'vm', 'US', 180, 250, 60, 'Non-profit pricing.'],
  ['Saffron Hospitality Group', 'vm,was', 'ME', 940, 1200, 135, 'Hotel PMS systems in scope from January.'],
  ['Tidewater Energy Cooperative', 'vm', 'US', 3300, 3500, 5, 'Renewal signed, waiting for licence key update.'],
  ['Umbra Games Studio', 'cs', 'EU', 0, 50, 280, 'Container Security only: CI pipeline integration.'],
  ['Vantage Point Legal LLP', 'vm', 'UK', 310, 400, 190, ''],
  ['Willow Creek Farms Co-op', 'vm', 'US', 75, 100, 410, ''],
  ['Xenon Data Centers', 'vm,cs', 'EU', 7800, 8000, 88, 'Agent-based scanning for colo customers.'],
  ['Yellowstone Outfitters', 'vm,was', 'US', 260, 300, 240, ''],
  ['Zephyr Wind Systems', 'vm', 'EU', 1980, 2000, 19, 'Near limit; upsell conversation started.'],
  ['Atlas Property Management', 'vm', 'UK', 420, 500, 170, ''],
  ['Beacon Hill Pediatrics', 'vm', 'US', 60, 100, -2, 'Expired two days ago.'],
  ['Coral Reef Analytics', 'was,cs', 'AP', 0, 40, 350, ''],
  ['Dunmore Civil Engineering', 'vm', 'UK', 730, 1000, 120, 'Prefers contact by phone.'],
]

async function seedAccounts(app: FastifyInstance, adminUsername: string): Promise<void> {
  const now = Date.now()
  const day = 86_400_000
  const admin = await app.db.selectFrom('users').select('id').where('username', '=', adminUsername).executeTakeFirstOrThrow()
  const logoIds = await seedDemoLogos(app.db, admin.id)
  const ids: number[] = []
  for (const [i, [name, apps, region, assets, limit, days, notes]] of CUSTOMERS.entries()) {
    const slug = name.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/-+$/, '')
    const account = await insertAccount(app.db, {
      uuid: uuid(),
      container_name: name,
      custom_name: i % 4 === 0 ? name.split(' ')[0] + ' (managed)' : null,
      site_id: `${region}-${String(1000 + i * 37).padStart(5, '0')}`,
      region,
      licensed_apps: apps,
      licensed_assets: assets,
      licensed_assets_limit: limit,
      license_expiration_date: days === null ? null : now + days * day,
      logo_id: i % 3 === 0 ? logoIds[(i / 3) % logoIds.length]! : null,
      notes,
      lms_customer_id: `LMS-${200_000 + i * 113}`,
      sso_username: `mssp-sso@${slug.split('-')[0]}.example`,
      domains: JSON.stringify([`${slug.split('-')[0]}.example`]),
      instance_url: null,
      contact_email: `security@${slug.split('-')[0]}.example`,
      created_by: admin.id,
      created_at: now - (200 - i) * day,
      modified_at: now - (i % 9) * day,
    })
    ids.push(account.id)
  }
  // Non-administrators see only their assigned accounts.
  const others = await app.db.selectFrom('users').select(['id', 'role']).where('role', '<', 64).orderBy('id').execute()
  for (const [n, u] of others.entries()) {
    await replaceAssignments(app.db, u.id, ids.filter((_, i) => (i + n) % 5 === 0 || i === n), now)
  }
}
