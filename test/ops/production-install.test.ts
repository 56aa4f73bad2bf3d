// A production install (issue 24): a built tree installed with `npm ci --omit=dev`, the
// Dockerfile's way, has neither tsx nor esbuild, keeps its build through `prepare`, starts and
// answers; a source changed after the build is refused out loud, never run stale.
//
// The tree is copied to a temporary folder and installed from the npm cache (--offline); the
// install scripts are left out (better-sqlite3 would compile for a minute): its addon is
// copied from this checkout's build, then `prepare` runs as npm would run it.
import { spawn, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import t from 'tap'
import { freePort } from '../support/processes.ts'

const ROOT = path.resolve(import.meta.dirname, '..', '..')
const TREE = ['package.json', 'package-lock.json', 'bin', 'scripts', 'src', 'views', 'public', 'migrations']
const ADDON = path.join('node_modules', 'better-sqlite3', 'build', 'Release', 'better_sqlite3.node')

function run(command: string, args: string[], cwd: string, timeout = 120_000) {
  const r = spawnSync(command, args, { cwd, encoding: 'utf8', timeout, env: { ...process.env, npm_config_audit: 'false', npm_config_fund: 'false', npm_config_update_notifier: 'false' } })
  return { status: r.status, output: `${r.stdout ?? ''}${r.stderr ?? ''}` }
}


const built = run(process.execPath, [path.join(ROOT, 'scripts', 'build.mjs')], ROOT)
if (built.status !== 0) throw new Error(`npm run build failed:\n${built.output}`)

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mssp-production-'))
t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }))
for (const entry of TREE) fs.cpSync(path.join(ROOT, entry), path.join(dir, entry), { recursive: true })
fs.cpSync(path.join(ROOT, 'dist', 'app'), path.join(dir, 'dist', 'app'), { recursive: true })

const install = run('npm', ['ci', '--omit=dev', '--offline', '--ignore-scripts'], dir)
if (install.status !== 0 && /ENOTCACHED|offline/i.test(install.output)) {
  t.plan(0, `the npm cache cannot provide the packages offline, so a production install cannot be tried here:\n${install.output.slice(-600)}`)
} else {
  t.test('npm ci --omit=dev installs the built tree without tsx and esbuild', async (t) => {
    t.equal(install.status, 0, `npm ci --omit=dev succeeds:\n${install.output.slice(-2000)}`)
    t.notOk(fs.existsSync(path.join(dir, 'node_modules', 'tsx')), 'tsx is not installed')
    t.notOk(fs.existsSync(path.join(dir, 'node_modules', 'esbuild')), 'esbuild is not installed')
    fs.mkdirSync(path.dirname(path.join(dir, ADDON)), { recursive: true })
    fs.copyFileSync(path.join(ROOT, ADDON), path.join(dir, ADDON))
    const prepare = run('npm', ['run', 'prepare'], dir)
    t.equal(prepare.status, 0, `prepare succeeds without esbuild:\n${prepare.output}`)
    t.match(prepare.output, /keeping the build in dist\/app/, 'prepare keeps the build made beforehand')
  })

  t.test('the production install starts and answers /healthz and /login', async (t) => {
    const port = await freePort()
    const child = spawn(process.execPath, ['bin/mssp-portal.js', 'serve'], {
      cwd: dir,
      env: { PATH: process.env.PATH, HOME: dir, DATA_DIR: path.join(dir, 'data'), PORT: String(port), HOST: '127.0.0.1', LOG_LEVEL: 'warn', SHUTDOWN_DRAIN_SECONDS: '0' },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let output = ''
    child.stdout.on('data', (d) => (output += d))
    child.stderr.on('data', (d) => (output += d))
    const exited = new Promise((resolve) => child.once('exit', resolve))
    t.teardown(async () => {
      if (child.exitCode === null) child.kill('SIGKILL')
      await exited
    })
    const base = `http://127.0.0.1:${port}`
    let health: Response | undefined
    for (let i = 0; i < 300 && child.exitCode === null; i++) {
      health = await fetch(`${base}/healthz`).catch(() => undefined)
      if (health) break
      await new Promise((r) => setTimeout(r, 100))
    }
    t.equal(health?.status, 200, `/healthz answers 200 (output: ${output})`)
    const login = await fetch(`${base}/login`)
    t.equal(login.status, 200, '/login answers 200')
    t.match(await login.text(), /<form/, '/login is the sign-in page')
    t.notMatch(output, /rebuilding/, 'the build made beforehand runs as it is')
  })

  t.test('a source changed after the build is refused, not run stale', async (t) => {
    fs.appendFileSync(path.join(dir, 'src', 'config.ts'), '\n// changed after the build\n')
    const r = run(process.execPath, ['bin/mssp-portal.js', '--version'], dir)
    t.equal(r.status, 1, 'the command fails')
    t.match(r.output, /src\/config\.ts changed since the build/, 'it names the changed source')
    t.match(r.output, /cannot rebuild: esbuild is not installed/, 'it says why it cannot rebuild')
    t.notMatch(r.output, /^0\.\d+\.\d+$/m, 'the stale build did not run')
  })
}
