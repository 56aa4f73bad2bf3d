#!/usr/bin/env node
// `npm test`: runs tap with the project's config (package.json "tap"), streaming its
// output, then prints one plain line that CI reads, alone at the end:
//
//   N passed, N failed[, N skipped]
//
// The counts come from tap's closing summary line (`# { total, pass, fail, skip, todo }`,
// leaf assertions across every file); todo points count as skipped. The exit code is
// tap's own, made non-zero when tap crashed, was killed, or printed no summary.
// Extra arguments go to tap: `npm test -- test/routes/sign-in.test.ts`.
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const localTap = path.join(root, 'node_modules', '.bin', process.platform === 'win32' ? 'tap.cmd' : 'tap')
const [command, baseArgs] = fs.existsSync(localTap) ? [localTap, []] : ['npx', ['--no-install', 'tap']]

// Strips colour codes, should a reporter print any.
// eslint-disable-next-line no-control-regex
const ANSI = /\u001b\[[0-9;?]*[A-Za-z]/g
const SUMMARY = /^# (\{ *total: *\d+.*\})\s*$/

/** Parses `{ total: 5, pass: 1, fail: 1, todo: 1, skip: 2 }` (tap's summary, not JSON). */
function parseSummary(text) {
  const counts = { total: 0, pass: 0, fail: 0, skip: 0, todo: 0 }
  for (const [, key, value] of text.matchAll(/(\w+): *(\d+)/g)) counts[key] = Number(value)
  return counts
}

let summary = null
let pending = ''
function scan(text) {
  pending += text
  const lines = pending.split('\n')
  pending = lines.pop() ?? ''
  for (const line of lines) {
    const m = SUMMARY.exec(line.replace(ANSI, '').replace(/\r$/, ''))
    if (m) summary = parseSummary(m[1])
  }
}

const child = spawn(command, [...baseArgs, ...process.argv.slice(2)], {
  cwd: root,
  stdio: ['inherit', 'pipe', 'inherit'],
  env: process.env,
})

child.stdout.on('data', (chunk) => {
  process.stdout.write(chunk)
  scan(chunk.toString('utf8'))
})

for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(signal, () => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal)
  })
}

child.on('error', (err) => {
  console.error(`scripts/test.mjs: cannot start tap (${command}): ${err.message}`)
  finish(null, null)
})

child.on('close', (code, signal) => finish(code, signal))

let finished = false
function finish(code, signal) {
  if (finished) return
  finished = true
  scan('\n')
  let exitCode = typeof code === 'number' ? code : 1
  let line
  if (!summary) {
    console.error(
      `scripts/test.mjs: tap printed no summary (${signal ? `killed by ${signal}` : `exit code ${code}`}); counting the run as failed.`,
    )
    line = '0 passed, 1 failed'
    if (exitCode === 0) exitCode = 1
  } else {
    const skipped = summary.skip + summary.todo
    line = `${summary.pass} passed, ${summary.fail} failed${skipped ? `, ${skipped} skipped` : ''}`
    if (summary.fail > 0 && exitCode === 0) exitCode = 1
    if (summary.total === 0 && exitCode === 0) {
      console.error('scripts/test.mjs: tap ran no tests; counting the run as failed.')
      exitCode = 1
    }
  }
  // Alone on its own line, last: what CI reads.
  process.stdout.write(`\n${line}\n`, () => process.exit(exitCode))
}
