// Whether dist/app (scripts/build.mjs) is current: what bin/mssp-portal.js asks before every
// command, so it loads no more than it must (the build itself, esbuild, only when it is not).
import crypto from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
export const OUT_DIR = path.join(ROOT, 'dist', 'app')
export const ENTRY = path.join(OUT_DIR, 'cli.mjs')
export const STAMP = path.join(OUT_DIR, 'build.json')

export const hashFile = (file) => crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex').slice(0, 16)

export function readStamp() {
  try {
    return JSON.parse(fs.readFileSync(STAMP, 'utf8'))
  } catch {
    return undefined
  }
}

/**
 * Why the build in dist/app cannot be run as it is (no build, or a source changed since),
 * or undefined when it is current. A file newer than the build is hashed: an unchanged
 * file with a new date (a checkout, a copy) does not count.
 */
export function isStale() {
  const stamp = readStamp()
  if (!stamp || !fs.existsSync(ENTRY)) return 'there is no build in dist/app'
  for (const [rel, hash] of Object.entries(stamp.inputs)) {
    const file = path.join(ROOT, rel)
    const st = fs.statSync(file, { throwIfNoEntry: false })
    if (!st) return `${rel} is gone since the build`
    if (st.mtimeMs > stamp.builtAt && hashFile(file) !== hash) return `${rel} changed since the build`
  }
  return undefined
}
