// Starting portal processes from tests (browser walks, operations, the single executable).
import { spawn } from 'node:child_process'
import net from 'node:net'
import path from 'node:path'

const ROOT = path.resolve(import.meta.dirname, '..', '..')

// Variables the portal reads (see src/config.ts) and tap's own: none may leak from the test
// runner's environment into a child (e.g. TEST_DATABASE_URL's DATABASE_URL).
const PORTAL_VARS = /^(NODE_ENV|PORT|HOST|BASE_URL|DATA_DIR|DATABASE_URL|TRUST_PROXY|SESSION_.*|SECRETS_KEY|SMTP_URL|MAIL_FROM|SMS_.*|MSSP_.*|ARGON2_CONCURRENCY|LOG_LEVEL|API_RATE_LIMIT_PER_MINUTE|SIGNIN_RATE_LIMIT_PER_MINUTE|METRICS_TOKEN|SHUTDOWN_DRAIN_SECONDS|TAP|TAP_.*|NODE_OPTIONS)$/

/** This process's environment without the portal's variables, plus `extra`. */
export function cleanEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {}
  for (const [k, v] of Object.entries(process.env)) if (!PORTAL_VARS.test(k)) env[k] = v
  return { ...env, ...extra }
}

export interface RunResult {
  code: number | null
  stdout: string
  stderr: string
}

/**
 * Runs `node <args>` in the project folder to its end, `stdin` fed and closed; resolves with
 * its exit code and output. Killed after `timeout` ms when one is given.
 */
export function runNode(args: string[], opts: { env: NodeJS.ProcessEnv; stdin?: string; timeout?: number }): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { cwd: ROOT, env: opts.env, timeout: opts.timeout, stdio: ['pipe', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d) => (stdout += d))
    child.stderr.on('data', (d) => (stderr += d))
    child.on('error', reject)
    child.on('close', (code) => resolve({ code, stdout, stderr }))
    child.stdin.end(opts.stdin ?? '')
  })
}

/** A TCP port nobody listens on at the moment. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer()
    server.unref()
    server.on('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo
      server.close(() => resolve(port))
    })
  })
}
