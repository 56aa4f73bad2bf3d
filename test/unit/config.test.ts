import path from 'node:path'
import t, { type Test } from 'tap'
import { ConfigError, loadConfig } from '../../src/config.ts'

const KEY = 'ab'.repeat(32)

/** Checks that loadConfig refuses `env` with a ConfigError whose message names `variable`. */
function configError(t: Pick<Test, 'ok' | 'match'>, env: Record<string, string>, variable: string, name: string) {
  let error: unknown
  try {
    loadConfig(env)
  } catch (err) {
    error = err
  }
  t.ok(error instanceof ConfigError, `${name}: refused with a ConfigError`)
  t.match(error instanceof Error ? error.message : '', variable, `${name}: the message names ${variable}`)
}

t.test('defaults: port 3000, base URL on localhost, ./data, SQLite', async (t) => {
  const config = loadConfig({})
  t.equal(config.port, 3000, 'the default port is 3000')
  t.equal(config.baseUrl, 'http://localhost:3000', 'the default base URL is on localhost, at the port')
  t.equal(config.host, '127.0.0.1', 'the default host listens on loopback only')
  t.equal(config.dataDir, path.resolve('./data'), 'the default data folder is ./data')
  t.equal(config.databaseUrl, undefined, 'no DATABASE_URL: SQLite')
  t.equal(config.trustProxy, false, 'no proxy trusted by default')
  t.equal(config.env, 'production', 'production unless NODE_ENV says otherwise')
  t.equal(config.sessionIdleMinutes, 30, 'sessions idle out after 30 minutes by default')
  t.equal(config.sessionMaxHours, 12, 'sessions last at most 12 hours by default')
  t.ok(Object.isFrozen(config), 'the configuration cannot be changed after start-up')
})

t.test('values are parsed', async (t) => {
  const config = loadConfig({
    PORT: '8080',
    DATABASE_URL: 'postgres://portal@db.internal/portal',
    SESSION_KEY: KEY,
    SECRETS_KEY: KEY,
    TRUST_PROXY: '1',
    BASE_URL: 'https://portal.example.com/',
    MSSP_ADMIN_USERNAME: 'root@example.com',
    MSSP_ADMIN_PASSWORD: 'Gl4cier-Tundra',
  })
  t.equal(config.port, 8080, 'PORT is parsed as a number')
  t.equal(config.baseUrl, 'https://portal.example.com', 'the trailing slash is dropped (links would have //)')
  t.equal(config.databaseUrl, 'postgres://portal@db.internal/portal', 'DATABASE_URL is kept as given')
  t.equal(config.trustProxy, 1, 'TRUST_PROXY=1 trusts one hop')
  t.equal(config.adminUsername, 'root@example.com', 'MSSP_ADMIN_USERNAME is kept as given')
  t.equal(loadConfig({ PORT: '8080' }).baseUrl, 'http://localhost:8080', 'the default base URL follows PORT')
  t.equal(loadConfig({ TRUST_PROXY: 'true' }).trustProxy, true, 'TRUST_PROXY=true trusts every proxy')
  t.equal(loadConfig({ TRUST_PROXY: '10.0.0.0/8, 127.0.0.1' }).trustProxy, '10.0.0.0/8, 127.0.0.1', 'TRUST_PROXY as a list of addresses is kept as given')
  t.equal(loadConfig({ PORT: '' }).port, 3000, 'an empty variable counts as unset')
})

t.test('a bad value throws a ConfigError naming the variable', async (t) => {
  const cases: Array<[Record<string, string>, string, string]> = [
    [{ PORT: 'eighty' }, 'PORT', 'PORT not a number'],
    [{ PORT: '70000' }, 'PORT', 'PORT out of range'],
    [{ PORT: '-1' }, 'PORT', 'PORT negative'],
    [{ PORT: '80.5' }, 'PORT', 'PORT not an integer'],
    [{ BASE_URL: 'portal.example.com' }, 'BASE_URL', 'BASE_URL without a scheme'],
    [{ BASE_URL: 'ftp://portal.example.com' }, 'BASE_URL', 'BASE_URL not http(s)'],
    [{ DATABASE_URL: 'mysql://db/portal', SESSION_KEY: KEY }, 'DATABASE_URL', 'DATABASE_URL not PostgreSQL'],
    [{ DATABASE_URL: 'portal.sqlite', SESSION_KEY: KEY }, 'DATABASE_URL', 'DATABASE_URL a file name'],
    [{ TRUST_PROXY: 'maybe' }, 'TRUST_PROXY', 'TRUST_PROXY a word'],
    [{ SESSION_KEY: 'not-hex' }, 'SESSION_KEY', 'SESSION_KEY not hexadecimal'],
    [{ SESSION_KEY: 'ab'.repeat(16) }, 'SESSION_KEY', 'SESSION_KEY too short'],
    [{ LOG_LEVEL: 'verbose' }, 'LOG_LEVEL', 'LOG_LEVEL unknown'],
    [{ SMTP_URL: 'http://mail' }, 'SMTP_URL', 'SMTP_URL not smtp'],
  ]
  for (const [env, variable, name] of cases) configError(t, env, variable, name)
})

t.test('DATABASE_URL needs SESSION_KEY (every process must share it)', async (t) => {
  configError(t, { DATABASE_URL: 'postgres://portal@db/portal', SECRETS_KEY: KEY }, 'SESSION_KEY', 'DATABASE_URL without SESSION_KEY')
  t.doesNotThrow(() => loadConfig({ DATABASE_URL: 'postgresql://portal@db/portal', SESSION_KEY: KEY, SECRETS_KEY: KEY }), 'DATABASE_URL with both keys (postgresql:// scheme) is accepted')
})

t.test('MSSP_ADMIN_USERNAME and MSSP_ADMIN_PASSWORD come together', async (t) => {
  configError(t, { MSSP_ADMIN_USERNAME: 'root@example.com' }, 'MSSP_ADMIN_PASSWORD', 'username without password')
  configError(t, { MSSP_ADMIN_PASSWORD: 'Gl4cier-Tundra' }, 'MSSP_ADMIN_USERNAME', 'password without username')
})

t.test('every problem is reported at once', async (t) => {
  try {
    loadConfig({ PORT: 'x', BASE_URL: 'y', TRUST_PROXY: 'z' })
    t.fail('accepted')
  } catch (err) {
    for (const v of ['PORT', 'BASE_URL', 'TRUST_PROXY']) t.match((err as Error).message, v, `the message names ${v}`)
  }
})
