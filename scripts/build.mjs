#!/usr/bin/env node
// `npm run build` (and `prepare`, on every install): the portal as compiled JavaScript in
// dist/app/, what `npm start`, bin/mssp-portal.js and the npm scripts run. esbuild bundles
// src/cli.ts and the packages it uses into ES modules split at every `import()`, so a start
// loads only what it uses (the web server's plugins are not part of `domains list`).
// Native addons and the packages that read files next to themselves stay in node_modules.
// Source maps (without the sources) let stack traces name the .ts lines.
//
// dist/app/build.json lists the sources the build was made from, with their hashes:
// bin/mssp-portal.js checks them before it runs the build (scripts/stale.mjs).
//
//   node scripts/build.mjs            build
//   node scripts/build.mjs --prepare  build if esbuild is installed; otherwise keep the
//                                     build already there (`npm ci --omit=dev`)
//   node scripts/build.mjs --watch    `npm run dev`: rebuild on change and restart `serve`
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { pathToFileURL } from 'node:url'
import { ENTRY, OUT_DIR, ROOT, STAMP, hashFile, isStale, readStamp } from './stale.mjs'
/** Not sources, but what the bundled packages are: a changed lockfile means changed packages. */
const LOCKFILE = 'package-lock.json'

/** Native addons, and packages that read their own files through __dirname (swagger-ui's page). */
const EXTERNAL = ['better-sqlite3', '@node-rs/argon2', 'sodium-native', 'pg-native', '@fastify/swagger-ui']

const toPosix = (p) => p.split(path.sep).join('/')

/**
 * Our sources' `import.meta.dirname` becomes their folder in the repository, found from the
 * chunk's own URL (dist/app/ is two levels below the root): the views, public files and
 * the demo instance's files are read from there.
 */
const importMetaPlugin = {
  name: 'import-meta-dirname',
  setup(build) {
    build.onLoad({ filter: /[\\/]src[\\/].*\.ts$/ }, async (args) => {
      const text = await fs.promises.readFile(args.path, 'utf8')
      if (!text.includes('import.meta.dirname')) return undefined
      const dir = toPosix(path.relative(ROOT, path.dirname(args.path)))
      const replacement = `__fileURLToPath(new URL(${JSON.stringify(`../../${dir}/`)}, import.meta.url)).slice(0, -1)`
      return { contents: `import { fileURLToPath as __fileURLToPath } from 'node:url';\n${text.replaceAll('import.meta.dirname', replacement)}`, loader: 'ts' }
    })
  },
}

function options() {
  return {
    entryPoints: [path.join(ROOT, 'src', 'cli.ts')],
    outdir: OUT_DIR,
    bundle: true,
    splitting: true,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    outExtension: { '.js': '.mjs' },
    chunkNames: '[name]-[hash]',
    sourcemap: 'linked',
    sourcesContent: false,
    // Class names are compared at run time (e.g. Kysely's adapter in src/db/migrations.ts).
    keepNames: true,
    minify: true,
    legalComments: 'none',
    external: EXTERNAL,
    // The bundled CommonJS packages `require` Node's built-in modules.
    banner: { js: 'import { createRequire as __createRequire } from "node:module"; const require = __createRequire(import.meta.url);' },
    plugins: [importMetaPlugin],
    metafile: true,
    write: false,
    logLevel: 'silent',
  }
}

const VLQ = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'
const VLQ_VALUE = new Map([...VLQ].map((c, i) => [c, i]))
function decodeVlq(segment) {
  const values = []
  let value = 0
  let shift = 0
  for (const c of segment) {
    const digit = VLQ_VALUE.get(c)
    value += (digit & 31) << shift
    if (digit & 32) shift += 5
    else {
      values.push(value & 1 ? -(value >>> 1) : value >>> 1)
      value = 0
      shift = 0
    }
  }
  return values
}
function encodeVlq(values) {
  let out = ''
  for (const v of values) {
    let rest = v < 0 ? (-v << 1) | 1 : v << 1
    do {
      const digit = rest & 31
      rest >>>= 5
      out += VLQ[rest ? digit | 32 : digit]
    } while (rest)
  }
  return out
}

/**
 * A source map with the mappings of our own sources only: Node parses a chunk's whole map
 * when it loads the chunk, and the packages' mappings made it several megabytes (35 MB more
 * memory at start-up, a tenth of a second). Stack frames in a package keep the bundle's line.
 */
function ownMappingsOnly(text) {
  const map = JSON.parse(text)
  const own = map.sources.map((s) => !s.includes('node_modules/'))
  const absolute = [0, 0, 0, 0] // source, line, column, name: relative across the whole map
  const written = [0, 0, 0, 0]
  const lines = map.mappings.split(';').map((line) => {
    let column = 0
    let writtenColumn = 0
    const kept = []
    for (const segment of line ? line.split(',') : []) {
      const v = decodeVlq(segment)
      column += v[0]
      if (v.length === 1) continue
      for (let i = 1; i < v.length; i++) absolute[i - 1] += v[i]
      if (!own[absolute[0]]) continue
      const out = [column - writtenColumn]
      writtenColumn = column
      for (let i = 1; i < v.length; i++) {
        out.push(absolute[i - 1] - written[i - 1])
        written[i - 1] = absolute[i - 1]
      }
      kept.push(encodeVlq(out))
    }
    return kept.join(',')
  })
  map.mappings = lines.join(';')
  return JSON.stringify(map)
}

/** Writes the outputs (each file atomically) and the stamp; removes files of builds before the last. */
function writeOutputs(result, startedAt) {
  fs.mkdirSync(OUT_DIR, { recursive: true })
  for (const file of result.outputFiles) {
    const tmp = `${file.path}.tmp-${process.pid}`
    fs.writeFileSync(tmp, file.path.endsWith('.map') ? ownMappingsOnly(file.text) : file.contents)
    fs.renameSync(tmp, file.path)
  }
  const inputs = {}
  for (const input of Object.keys(result.metafile.inputs)) {
    const file = path.resolve(ROOT, input)
    const rel = toPosix(path.relative(ROOT, file))
    if (rel.startsWith('..') || rel.includes('node_modules/') || !fs.existsSync(file)) continue
    inputs[rel] = hashFile(file)
  }
  if (fs.existsSync(path.join(ROOT, LOCKFILE))) inputs[LOCKFILE] = hashFile(path.join(ROOT, LOCKFILE))
  const files = result.outputFiles.map((f) => path.basename(f.path))
  const previous = readStamp()
  // A process started on the previous build may still import its chunks: those stay.
  const keep = new Set([...files, ...(previous?.files ?? []), 'build.json'])
  for (const name of fs.readdirSync(OUT_DIR)) if (!keep.has(name)) fs.rmSync(path.join(OUT_DIR, name), { force: true })
  // The time the build read its sources: a file changed while it ran counts as changed.
  const stamp = { builtAt: startedAt, inputs, files }
  fs.writeFileSync(`${STAMP}.tmp-${process.pid}`, JSON.stringify(stamp, null, 1) + '\n')
  fs.renameSync(`${STAMP}.tmp-${process.pid}`, STAMP)
}

async function loadEsbuild() {
  try {
    return await import('esbuild')
  } catch {
    return undefined
  }
}

/** Builds dist/app; throws when esbuild is not installed. */
export async function build() {
  const esbuild = await loadEsbuild()
  if (!esbuild) throw new Error('esbuild is not installed (a production install): install the development dependencies (npm install) to build')
  const startedAt = Date.now()
  const result = await esbuild.build(options())
  for (const w of result.warnings) if (!/require\.resolve|"require" was called|indirect call to "require"/.test(w.text)) console.warn(`esbuild: ${w.text}`)
  writeOutputs(result, startedAt)
}

/** `npm run dev`: rebuild on every change of a source, then restart `serve` on the new build. */
async function watch() {
  const esbuild = await loadEsbuild()
  if (!esbuild) throw new Error('npm run dev needs esbuild (npm install)')
  let child
  const restart = async () => {
    if (child && child.exitCode === null) {
      const exited = new Promise((resolve) => child.once('exit', resolve))
      child.kill('SIGTERM')
      await exited
    }
    child = spawn(process.execPath, ['--enable-source-maps', ENTRY, 'serve', ...process.argv.slice(3)], { stdio: 'inherit', env: { SHUTDOWN_DRAIN_SECONDS: '0', ...process.env } })
  }
  const opts = options()
  let startedAt = Date.now()
  const reload = {
    name: 'reload',
    setup(b) {
      b.onStart(() => {
        startedAt = Date.now()
      })
      b.onEnd(async (result) => {
        if (result.errors.length) {
          for (const e of result.errors) console.error(`esbuild: ${e.text}${e.location ? ` (${e.location.file}:${e.location.line})` : ''}`)
          return
        }
        writeOutputs(result, startedAt)
        console.error('[dev] built dist/app; (re)starting the portal')
        await restart()
      })
    },
  }
  const context = await esbuild.context({ ...opts, plugins: [...opts.plugins, reload] })
  await context.watch()
  for (const signal of ['SIGINT', 'SIGTERM']) {
    process.once(signal, async () => {
      await context.dispose()
      if (child && child.exitCode === null) child.kill(signal)
      else process.exit(0)
      child.once('exit', () => process.exit(0))
    })
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const flag = process.argv[2]
  try {
    if (flag === '--watch') await watch()
    else if (flag === '--prepare' && !(await loadEsbuild())) {
      // `npm ci --omit=dev`: no build tools; the tree was built before it was copied.
      const why = isStale()
      console.error(why ? `mssp-portal: esbuild is not installed and ${why}: the portal cannot start until it is built (npm install, then npm run build).` : 'mssp-portal: esbuild is not installed; keeping the build in dist/app, which is current.')
    } else await build()
  } catch (err) {
    console.error(`build: ${err instanceof Error ? err.message : err}`)
    process.exitCode = 1
  }
}
