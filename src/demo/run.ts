import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { loadConfig } from '../config.ts'
import { buildApp } from '../app.ts'
import { roleLabel } from '../lib/roles.ts'
import { seedDemo } from './seed.ts'

/** `npm run demo`: a fresh portal in a temporary data folder, seeded, listening. */
export async function runDemo(): Promise<void> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'mssp-demo-'))
  // Text messages go to the outbox in the demo, so SMS two-factor can be tried without a gateway.
  const config = loadConfig({ SMS_VIA_OUTBOX: 'true', DEMO_INSTANCE: 'true', ...process.env, DATA_DIR: dataDir, DATABASE_URL: undefined })
  const app = await buildApp(config)
  const creds = await seedDemo(app, { adminUsername: config.adminUsername, adminPassword: config.adminPassword })
  await app.listen({ port: config.port, host: config.host })
  const lines = [
    '',
    `  MSSP Portal demo: ${config.baseUrl}`,
    `  Data folder (deleted when you stop the demo): ${dataDir}`,
    `  Demo customer instance: ${config.baseUrl}/demo-instance (single sign-on from the Accounts page)`,
    '',
    `  Administrator: ${creds.administrator}`,
    `  Password:      ${creds.password}   (every demo user has this password)`,
    '',
    '  Other demo users:',
    ...creds.users.slice(1).map((u) => `    ${u.username.padEnd(40)} ${roleLabel(u.role)}${u.note ? ` (${u.note})` : ''}`),
    '',
  ]
  process.stdout.write(lines.join('\n') + '\n')
  const stop = () => {
    app.close().finally(() => {
      fs.rmSync(dataDir, { recursive: true, force: true })
      process.exit(0)
    })
  }
  process.on('SIGINT', stop)
  process.on('SIGTERM', stop)
}
