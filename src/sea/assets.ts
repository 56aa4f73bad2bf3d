// The single executable's files (see scripts/build-binary.mjs): views, public files, htmx,
// the demo instance's files and the native addons travel inside `mssp-portal` as SEA assets,
// listed in the asset `manifest.json`. On the first call (when src/lib/paths.ts is loaded)
// they are written to a private folder, `$TMPDIR/mssp-portal-XXXXXX` (mode 0700, made with
// mkdtemp), laid out as in the repository (views/, public/, node_modules/htmx.org/dist/,
// src/demo-instance/...), and removed when the process exits. Folders left behind by a
// process that was killed are removed by the next start on the same host.
//
// Outside the single executable (npm scripts, tsx, tests) nothing here does anything:
// seaAssetRoot() returns undefined.
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import sea from 'node:sea'

/** The asset `manifest.json`, written by scripts/build-binary.mjs. */
export interface SeaManifest {
  version: 1
  /** Files, by their path relative to the repository root (also their asset key). */
  files: { name: string; mode: number }[]
  /** Native addons: a short name (better-sqlite3, argon2, sodium-native) to a file in `files`. */
  native: Record<string, string>
}

const PREFIX = 'mssp-portal-'
const OWNER_FILE = '.owner'

let manifest: SeaManifest | undefined
let root: string | undefined
let checked = false

export function isSingleExecutable(): boolean {
  return sea.isSea()
}

/** The folder holding the extracted files inside the single executable (extracting them on the first call); undefined otherwise. */
export function seaAssetRoot(): string | undefined {
  if (checked) return root
  checked = true
  if (!sea.isSea()) return undefined
  manifest = JSON.parse(sea.getAsset('manifest.json', 'utf8')) as SeaManifest
  removeStaleFolders()
  root = extract(manifest)
  return root
}

/** The extracted file of a native addon (`better-sqlite3`, `argon2`, `sodium-native`); undefined outside the single executable. */
export function seaNativeAddonPath(name: string): string | undefined {
  const dir = seaAssetRoot()
  if (!dir || !manifest) return undefined
  const file = manifest.native[name]
  if (!file) throw new Error(`The executable carries no native addon "${name}".`)
  return path.join(dir, file)
}

/** Loads a native addon from the extracted files (only inside the single executable). */
const loaded = new Map<string, unknown>()

export function loadSeaNativeAddon(name: string): unknown {
  if (loaded.has(name)) return loaded.get(name)
  const file = seaNativeAddonPath(name)
  if (!file) throw new Error(`loadSeaNativeAddon("${name}") outside the single executable`)
  const mod = { exports: {} as unknown }
  try {
    process.dlopen(mod, file)
  } catch (err) {
    throw new Error(
      `Cannot load the native addon ${name} from ${file}: ${(err as Error).message}. ` +
        'If the temporary folder is mounted noexec, point TMPDIR to a folder that allows executables.',
    )
  }
  loaded.set(name, mod.exports)
  return mod.exports
}

/**
 * `import.meta.dirname` of a bundled source file inside the single executable (the build
 * rewrites it to a call of this function with the file's folder relative to the repository):
 * the same folder under the extracted root, so that paths next to the sources resolve.
 */
export function seaImportMetaDirname(relativeDir: string): string {
  return path.join(seaAssetRoot() ?? process.cwd(), relativeDir)
}

function extract(m: SeaManifest): string {
  // mkdtemp makes the folder with mode 0700 and a name nobody else can have guessed.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), PREFIX))
  const remove = () => {
    try {
      fs.rmSync(dir, { recursive: true, force: true })
    } catch {
      // Best effort: the next start removes it.
    }
  }
  process.on('exit', remove)
  // A command without its own signal handlers dies of SIGTERM/SIGINT/SIGHUP without 'exit':
  // remove the files, then die of the same signal. Commands that handle the signal (serve)
  // end with process.exit, and 'exit' removes them.
  for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) {
    const onSignal = () => {
      if (process.listenerCount(signal) > 1) return
      remove()
      process.removeListener(signal, onSignal)
      process.kill(process.pid, signal)
    }
    process.on(signal, onSignal)
  }
  fs.writeFileSync(path.join(dir, OWNER_FILE), `${os.hostname()} ${process.pid}\n`, { mode: 0o600, flag: 'wx' })
  const made = new Set<string>([dir])
  for (const f of m.files) {
    const target = path.join(dir, f.name)
    if (!target.startsWith(dir + path.sep)) throw new Error(`Bad asset name: ${f.name}`)
    const parent = path.dirname(target)
    if (!made.has(parent)) {
      fs.mkdirSync(parent, { recursive: true, mode: 0o700 })
      made.add(parent)
    }
    const data = sea.getRawAsset(f.name)
    fs.writeFileSync(target, typeof data === 'string' ? data : new Uint8Array(data), { mode: f.mode & 0o700, flag: 'wx' })
  }
  return dir
}

/** Removes extracted folders of this user whose process (on this host) is gone. */
function removeStaleFolders(): void {
  const tmp = os.tmpdir()
  const uid = process.getuid?.()
  let names: string[]
  try {
    names = fs.readdirSync(tmp).filter((n) => n.startsWith(PREFIX))
  } catch {
    return
  }
  for (const name of names) {
    const dir = path.join(tmp, name)
    try {
      const st = fs.lstatSync(dir)
      if (!st.isDirectory() || (uid !== undefined && st.uid !== uid)) continue
      const [host, pidText] = fs.readFileSync(path.join(dir, OWNER_FILE), 'utf8').trim().split(' ')
      const pid = Number(pidText)
      if (host !== os.hostname() || !Number.isInteger(pid) || pid <= 0 || isAlive(pid)) continue
      fs.rmSync(dir, { recursive: true, force: true })
    } catch {
      // Not ours, not finished, or already gone.
    }
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}
