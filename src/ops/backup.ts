import crypto from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import SQLite from 'better-sqlite3'
import { ConfigError, loadConfig } from '../config.ts'
import { SQLITE_NATIVE_BINDING } from '../lib/paths.ts'

// `mssp-portal backup FILE` and `mssp-portal restore FILE` for the SQLite deployment
// (docs/operations.md). A backup is ONE file, itself a SQLite database: an online copy of
// portal.sqlite (SQLite's backup API, so a portal may keep serving and writing meanwhile)
// plus a table `backup_files(name, mode, content)` holding the data folder's key files
// (`*.key`, and `*.json` key stores). Without the keys a copy of the database is of little
// use: TOTP secrets are encrypted with secrets.key, API secrets are keyed from it.
//
// The backup file holds those keys: keep it as carefully as the data folder (it is written
// with mode 0600).

export const DATABASE_FILE = 'portal.sqlite'
export const FILES_TABLE = 'backup_files'
/** Files of the data folder that go into a backup besides the database. */
export const KEY_FILE_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]*\.(key|json)$/

export class BackupError extends Error {}

export interface BackupResult {
  file: string
  bytes: number
  pages: number
  keyFiles: string[]
}

export interface RestoreResult {
  dataDir: string
  keyFiles: string[]
}

function integrityCheck(db: SQLite.Database, what: string): void {
  const rows = db.pragma('integrity_check') as Array<{ integrity_check: string }>
  const problems = rows.map((r) => r.integrity_check).filter((r) => r !== 'ok')
  if (problems.length || rows.length === 0) {
    throw new BackupError(`${what} fails PRAGMA integrity_check:\n  ${problems.slice(0, 10).join('\n  ')}`)
  }
}

function fsyncPath(p: string): void {
  const fd = fs.openSync(p, 'r')
  try {
    fs.fsyncSync(fd)
  } finally {
    fs.closeSync(fd)
  }
}

function keyFilesOf(dataDir: string): string[] {
  return fs
    .readdirSync(dataDir, { withFileTypes: true })
    .filter((e) => e.isFile() && KEY_FILE_PATTERN.test(e.name))
    .map((e) => e.name)
    .sort()
}

/**
 * Writes a consistent backup of the portal in `dataDir` to `file` (replaced atomically if
 * it exists), while the portal may go on serving. The database is copied in one step of
 * SQLite's backup API: one read transaction, so one consistent moment, which in WAL mode
 * blocks no writer.
 */
export async function backup(dataDir: string, file: string): Promise<BackupResult> {
  const source = path.join(dataDir, DATABASE_FILE)
  if (!fs.existsSync(source)) throw new BackupError(`No portal database at ${source}: is DATA_DIR right?`)
  const target = path.resolve(file)
  const dir = path.dirname(target)
  if (!fs.existsSync(dir)) throw new BackupError(`The folder ${dir} does not exist.`)
  const partial = path.join(dir, `.${path.basename(target)}.${crypto.randomBytes(6).toString('hex')}.partial`)
  // Created first with 0600: the file will hold the keys, and is never readable by others.
  fs.closeSync(fs.openSync(partial, 'wx', 0o600))
  try {
    const src = new SQLite(source, { fileMustExist: true, nativeBinding: SQLITE_NATIVE_BINDING })
    let pages = 0
    try {
      src.pragma('busy_timeout = 5000')
      // The first step copies nothing; then everything in one step (one snapshot).
      const progress = await src.backup(partial, { progress: () => 0x7fffffff })
      pages = progress.totalPages
    } finally {
      src.close()
    }
    const keyFiles = keyFilesOf(dataDir)
    const out = new SQLite(partial, { fileMustExist: true, nativeBinding: SQLITE_NATIVE_BINDING })
    try {
      // One self-contained file: no -wal beside it.
      out.pragma('journal_mode = DELETE')
      out.pragma('synchronous = FULL')
      integrityCheck(out, 'The copied database')
      out.exec(`create table ${FILES_TABLE} (name text primary key, mode integer not null, content blob not null)`)
      const insert = out.prepare(`insert into ${FILES_TABLE} (name, mode, content) values (?, ?, ?)`)
      out.transaction(() => {
        for (const name of keyFiles) {
          const p = path.join(dataDir, name)
          insert.run(name, fs.statSync(p).mode & 0o777, fs.readFileSync(p))
        }
      })()
      integrityCheck(out, 'The backup')
    } finally {
      out.close()
    }
    fsyncPath(partial)
    fs.renameSync(partial, target)
    fsyncPath(dir)
    return { file: target, bytes: fs.statSync(target).size, pages, keyFiles }
  } catch (err) {
    fs.rmSync(partial, { force: true })
    fs.rmSync(`${partial}-journal`, { force: true })
    throw err
  }
}

/**
 * Restores a backup into `dataDir`, which must be empty (or not exist yet): portal.sqlite
 * without the backup's own table, and the key files with mode 0600. Refuses a folder that
 * holds anything, rather than mixing two portals' data.
 */
export async function restore(file: string, dataDir: string): Promise<RestoreResult> {
  const backupFile = path.resolve(file)
  if (!fs.existsSync(backupFile)) throw new BackupError(`No backup at ${backupFile}.`)
  const target = path.resolve(dataDir)
  if (fs.existsSync(target)) {
    if (!fs.statSync(target).isDirectory()) throw new BackupError(`${target} is not a folder.`)
    const present = fs.readdirSync(target)
    if (present.length) {
      const listed = present.slice(0, 5).join(', ') + (present.length > 5 ? `, … (${present.length} entries)` : '')
      throw new BackupError(`Restore needs an empty data folder, and ${target} holds: ${listed}. Nothing was changed. Restore into a new folder and point DATA_DIR at it.`)
    }
  }

  // Read and check the backup before writing anything.
  let files: Array<{ name: string; mode: number; content: Buffer }>
  let src: SQLite.Database
  try {
    src = new SQLite(backupFile, { readonly: true, fileMustExist: true, nativeBinding: SQLITE_NATIVE_BINDING })
  } catch (err) {
    throw new BackupError(`${backupFile} is not a portal backup (${(err as Error).message}).`)
  }
  try {
    try {
      integrityCheck(src, 'The backup')
    } catch (err) {
      if (err instanceof BackupError) throw err
      throw new BackupError(`${backupFile} is not a portal backup (${(err as Error).message}).`)
    }
    const tables = new Set((src.prepare(`select name from sqlite_master where type = 'table'`).all() as Array<{ name: string }>).map((r) => r.name))
    if (!tables.has(FILES_TABLE) || !tables.has('users')) throw new BackupError(`${backupFile} is not a portal backup (made by mssp-portal backup).`)
    files = src.prepare(`select name, mode, content from ${FILES_TABLE} order by name`).all() as typeof files
  } finally {
    src.close()
  }
  for (const f of files) {
    if (!KEY_FILE_PATTERN.test(f.name) || f.name === DATABASE_FILE) throw new BackupError(`The backup holds a file with an unexpected name: ${JSON.stringify(f.name)}.`)
  }

  const created = !fs.existsSync(target)
  fs.mkdirSync(target, { recursive: true, mode: 0o700 })
  const database = path.join(target, DATABASE_FILE)
  const partial = path.join(target, `.${DATABASE_FILE}.restoring`)
  try {
    fs.copyFileSync(backupFile, partial, fs.constants.COPYFILE_EXCL)
    fs.chmodSync(partial, 0o600)
    const db = new SQLite(partial, { fileMustExist: true, nativeBinding: SQLITE_NATIVE_BINDING })
    try {
      db.pragma('journal_mode = DELETE')
      db.pragma('synchronous = FULL')
      db.exec(`drop table ${FILES_TABLE}`)
      // Rewrites the file: the keys' bytes do not linger in its free pages.
      db.exec('vacuum')
      integrityCheck(db, 'The restored database')
    } finally {
      db.close()
    }
    fsyncPath(partial)
    for (const f of files) {
      const p = path.join(target, f.name)
      fs.writeFileSync(p, f.content, { mode: 0o600, flag: 'wx' })
      fs.chmodSync(p, 0o600)
      fsyncPath(p)
    }
    // Last: a portal started on a half-restored folder finds no database and no keys.
    fs.renameSync(partial, database)
    fsyncPath(target)
    return { dataDir: target, keyFiles: files.map((f) => f.name) }
  } catch (err) {
    for (const name of [path.basename(partial), `${path.basename(partial)}-journal`, ...files.map((f) => f.name)]) {
      fs.rmSync(path.join(target, name), { force: true })
    }
    if (created) fs.rmSync(target, { recursive: true, force: true })
    throw err
  }
}

/** Where the commands print: `console` will do. */
export interface Output {
  log(message: string): void
  error(message: string): void
}

const PG_MESSAGE = (command: string) =>
  `${command} works on the SQLite database of DATA_DIR; this portal uses PostgreSQL (DATABASE_URL).\n` +
  'Back up PostgreSQL with pg_dump, and keep SESSION_KEY and SECRETS_KEY with the dump: see docs/operations.md ("PostgreSQL").'

function configFor(env: NodeJS.ProcessEnv) {
  // MSSP_ADMIN_* belong to `serve`; like the other commands, ignore them.
  return loadConfig({ ...env, MSSP_ADMIN_USERNAME: undefined, MSSP_ADMIN_PASSWORD: undefined })
}

function oneFileArgument(command: string, args: string[], out: Output): string | null {
  const files = args.filter((a) => a !== '--')
  if (files.length !== 1 || files[0]!.startsWith('-')) {
    out.error(`Usage: mssp-portal ${command} FILE`)
    return null
  }
  return files[0]!
}

function reportError(err: unknown, out: Output): number {
  if (err instanceof BackupError || err instanceof ConfigError) {
    out.error(err.message)
    return 1
  }
  throw err
}

/** `mssp-portal backup FILE`: exit code 0, 1 (failed, with a message) or 2 (usage). */
export async function backupCommand(args: string[], out: Output = console, env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const file = oneFileArgument('backup', args, out)
  if (!file) return 2
  try {
    const config = configFor(env)
    if (config.databaseUrl) {
      out.error(PG_MESSAGE('backup'))
      return 1
    }
    const result = await backup(config.dataDir, file)
    const mb = (result.bytes / 1_048_576).toFixed(1)
    out.log(`Backed up ${path.join(config.dataDir, DATABASE_FILE)} (${mb} MB) and ${result.keyFiles.length ? result.keyFiles.join(', ') : 'no key files'} to ${result.file}.`)
    const fromEnv = (['SESSION_KEY', 'SECRETS_KEY'] as const).filter((k) => env[k])
    if (fromEnv.length) out.log(`Note: ${fromEnv.join(' and ')} come from the environment and are not in the backup: keep them with it.`)
    out.log('The backup holds the keys: store it as carefully as the data folder.')
    return 0
  } catch (err) {
    return reportError(err, out)
  }
}

/** `mssp-portal restore FILE` into DATA_DIR, which must be empty: exit code 0, 1 or 2. */
export async function restoreCommand(args: string[], out: Output = console, env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const file = oneFileArgument('restore', args, out)
  if (!file) return 2
  try {
    const config = configFor(env)
    if (config.databaseUrl) {
      out.error(PG_MESSAGE('restore'))
      return 1
    }
    const result = await restore(file, config.dataDir)
    out.log(`Restored ${file} into ${result.dataDir} (${DATABASE_FILE}${result.keyFiles.length ? `, ${result.keyFiles.join(', ')}` : ''}). Start the portal with DATA_DIR=${result.dataDir}.`)
    return 0
  } catch (err) {
    return reportError(err, out)
  }
}
