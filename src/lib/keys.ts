import crypto from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'

/**
 * A 32-byte secret from the environment (hex) or, when absent, from `<dataDir>/<name>.key`,
 * generated there on first start with mode 0600.
 */
export function loadOrCreateKey(dataDir: string, name: string, fromEnv: string | undefined): Buffer {
  if (fromEnv) return Buffer.from(fromEnv, 'hex')
  const file = path.join(dataDir, `${name}.key`)
  fs.mkdirSync(dataDir, { recursive: true, mode: 0o700 })
  try {
    const hex = fs.readFileSync(file, 'utf8').trim()
    if (!/^[0-9a-f]{64}$/i.test(hex)) throw new Error(`${file} does not hold a 64-character hexadecimal key`)
    return Buffer.from(hex, 'hex')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
  }
  const key = crypto.randomBytes(32)
  try {
    // 'wx': if another process created it meanwhile, we read theirs instead.
    fs.writeFileSync(file, key.toString('hex') + '\n', { mode: 0o600, flag: 'wx' })
    return key
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return loadOrCreateKey(dataDir, name, undefined)
    throw err
  }
}
