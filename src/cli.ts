import { parseArgs } from 'node:util'
import readline from 'node:readline'
import { ConfigError, loadConfig } from './config.ts'
import { openDatabase } from './db/index.ts'
import { migrateToLatest } from './db/migrations.ts'
import { createAdministrator } from './areas/auth/service.ts'
import { latestMessages } from './areas/outbox/service.ts'
import { ValidationError } from './lib/errors.ts'
import pkg from '../package.json' with { type: 'json' }

/** copy-to-postgres copied everything it could, but some rows were not copied (docs/operations.md). */
const COPY_INCOMPLETE_EXIT_CODE = 3

const HELP = `mssp-portal ${pkg.version}

Usage: mssp-portal <command> [options]

Commands:
  serve                 start the portal (the default)
  demo                  start a seeded demo portal in a temporary data folder
  migrate               bring the database to the latest migration
  create-admin          create an Administrator (password read from stdin or MSSP_ADMIN_PASSWORD)
      --username NAME@DOMAIN  --name "Full Name"  [--email ADDRESS]
  outbox [--limit N]    print the latest mail and text messages kept in the database
  rotate-signing-key    add a new single sign-on signing key (the old one stays published for an hour)
  backup FILE           copy the SQLite database and the key files into FILE, while the portal runs
  restore FILE          restore a backup into DATA_DIR, which must be empty (docs/operations.md)
  copy-to-postgres --to postgres://...
                        copy the SQLite database of DATA_DIR into an empty PostgreSQL database
                        (exit code 3: copied, but some rows PostgreSQL cannot store were not)
  domains list | add DOMAIN | remove DOMAIN
                        the approved domains of usernames (name@DOMAIN)
  demo-instance [--port 4000] [--portal-url URL]
                        run the demo customer instance alone, trusting the portal at URL (BASE_URL)
  --version             print the version
  --help                print this help

Configuration comes from the environment (see .env.example).`

async function readPassword(prompt: string): Promise<string> {
  if (process.env.MSSP_ADMIN_PASSWORD) return process.env.MSSP_ADMIN_PASSWORD
  const rl = readline.createInterface({ input: process.stdin, output: process.stderr, terminal: process.stdin.isTTY })
  if (process.stdin.isTTY) {
    process.stderr.write(prompt)
    // Do not echo the password on a terminal.
    ;(rl as unknown as { _writeToOutput: (s: string) => void })._writeToOutput = () => {}
  }
  const line = await new Promise<string>((resolve) => rl.once('line', resolve).once('close', () => resolve('')))
  rl.close()
  if (process.stdin.isTTY) process.stderr.write('\n')
  return line
}

function openConfiguredDatabase() {
  // MSSP_ADMIN_* belong to `serve` (unattended first start); other commands ignore them.
  const config = loadConfig({ ...process.env, MSSP_ADMIN_USERNAME: undefined, MSSP_ADMIN_PASSWORD: undefined })
  return openDatabase({ databaseUrl: config.databaseUrl, dataDir: config.dataDir })
}

export async function main(argv: string[]): Promise<number> {
  const [command = 'serve', ...rest] = argv
  if (command === '--help' || command === 'help' || command === '-h') {
    console.log(HELP)
    return 0
  }
  if (command === '--version' || command === '-v') {
    console.log(pkg.version)
    return 0
  }
  switch (command) {
    case 'serve': {
      const { serve } = await import('./server.ts')
      await serve(loadConfig())
      return -1 // keep running
    }
    case 'demo': {
      const { runDemo } = await import('./demo/run.ts')
      await runDemo()
      return -1
    }
    case 'migrate': {
      const { db } = openConfiguredDatabase()
      const applied = await migrateToLatest(db)
      await db.destroy()
      console.log(applied.length ? `Applied: ${applied.join(', ')}` : 'The database is up to date.')
      return 0
    }
    case 'create-admin': {
      const { values } = parseArgs({ args: rest, options: { username: { type: 'string' }, name: { type: 'string' }, email: { type: 'string' } } })
      if (!values.username || !values.name) {
        console.error('create-admin needs --username name@domain and --name "Full Name"')
        return 2
      }
      const password = await readPassword('Password: ')
      const { db } = openConfiguredDatabase()
      try {
        await migrateToLatest(db)
        const user = await createAdministrator(db, { username: values.username, name: values.name, email: values.email ?? null, password })
        console.log(`Administrator ${user.username} created; the domain ${user.username.split('@')[1]} is approved.`)
        return 0
      } catch (err) {
        if (err instanceof ValidationError) {
          console.error([err.message, ...Object.values(err.fieldErrors)].join('\n'))
          return 1
        }
        throw err
      } finally {
        await db.destroy()
      }
    }
    case 'demo-instance': {
      const { values } = parseArgs({ args: rest, options: { port: { type: 'string', default: '4000' }, host: { type: 'string', default: '127.0.0.1' }, 'portal-url': { type: 'string' } } })
      const config = loadConfig({ ...process.env, MSSP_ADMIN_USERNAME: undefined, MSSP_ADMIN_PASSWORD: undefined })
      const { buildDemoInstance } = await import('./demo-instance/app.ts')
      const port = Number(values.port)
      const origin = `http://${values.host === '0.0.0.0' ? 'localhost' : values.host}:${port}`
      const instance = buildDemoInstance({ portalUrl: (values['portal-url'] ?? config.baseUrl).replace(/\/+$/, ''), origin, basePath: '' })
      await instance.listen({ port, host: values.host })
      console.log(`Demo customer instance on ${origin}: set it as an account's Instance URL in the portal.`)
      for (const signal of ['SIGTERM', 'SIGINT'] as const) process.once(signal, () => void instance.close().then(() => process.exit(0)))
      return -1
    }
    case 'rotate-signing-key': {
      const { buildApp } = await import('./app.ts')
      const { rotateSigningKey } = await import('./areas/instances/signing-keys.ts')
      const app = await buildApp(loadConfig({ ...process.env, MSSP_ADMIN_USERNAME: undefined, MSSP_ADMIN_PASSWORD: undefined, LOG_LEVEL: 'warn' }))
      try {
        if (app.config.ssoSigningKey) {
          console.error('SSO_SIGNING_KEY is set: rotate by changing it (see docs/sso.md).')
          return 1
        }
        const kid = await rotateSigningKey(app)
        console.log(`New signing key ${kid}; the previous key stays published for an hour.`)
        return 0
      } finally {
        await app.close()
      }
    }
    case 'backup': {
      const { backupCommand } = await import('./ops/backup.ts')
      return backupCommand(rest)
    }
    case 'restore': {
      const { restoreCommand } = await import('./ops/backup.ts')
      return restoreCommand(rest)
    }
    case 'copy-to-postgres': {
      const { values } = parseArgs({ args: rest, options: { to: { type: 'string' } } })
      if (!values.to || !/^postgres(ql)?:\/\//.test(values.to)) {
        console.error('copy-to-postgres needs --to postgres://user@host/database')
        return 2
      }
      const config = loadConfig({ ...process.env, DATABASE_URL: undefined, MSSP_ADMIN_USERNAME: undefined, MSSP_ADMIN_PASSWORD: undefined })
      const { copyToPostgres } = await import('./ops/copy-to-postgres.ts')
      console.log(`Copying ${config.dataDir}/portal.sqlite to PostgreSQL:`)
      const { notCopied } = await copyToPostgres(config.dataDir, values.to, (line) => console.log(line))
      if (notCopied.length) console.log(`Copied, except the ${notCopied.length === 1 ? 'row' : `${notCopied.length} rows`} above: fix or re-enter ${notCopied.length === 1 ? 'it' : 'them'} in PostgreSQL.`)
      else console.log('Done.')
      console.log('Start every portal process with DATABASE_URL and the same SESSION_KEY and SECRETS_KEY')
      console.log(`as ${config.dataDir}/session.key and secrets.key (the hex inside those files).`)
      // A script running the copy must not take a partial copy for a complete one.
      return notCopied.length ? COPY_INCOMPLETE_EXIT_CODE : 0
    }
    case 'outbox': {
      const { values } = parseArgs({ args: rest, options: { limit: { type: 'string', default: '20' } } })
      const { db } = openConfiguredDatabase()
      await migrateToLatest(db)
      const messages = await latestMessages(db, Math.min(Number(values.limit) || 20, 500))
      await db.destroy()
      if (messages.length === 0) console.log('The outbox is empty.')
      for (const m of messages) {
        console.log(`--- ${new Date(m.created_at).toISOString()}  ${m.kind} to ${m.recipient}  [${m.status}]`)
        console.log(`Subject: ${m.subject}`)
        console.log(m.body || '(delivered; content not kept)')
      }
      return 0
    }
    case 'domains': {
      const { domainsCommand } = await import('./areas/settings/cli.ts')
      const { db } = openConfiguredDatabase()
      try {
        await migrateToLatest(db)
        return await domainsCommand(db, rest, (line) => console.log(line), (line) => console.error(line))
      } finally {
        await db.destroy()
      }
    }
    default:
      console.error(`Unknown command: ${command}\n\n${HELP}`)
      return 2
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code >= 0) process.exitCode = code
  },
  (err) => {
    if (err instanceof ConfigError) console.error(err.message)
    else console.error(err instanceof Error ? err.message : err)
    process.exitCode = 1
  },
)
