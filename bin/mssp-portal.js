#!/usr/bin/env node
// The CLI as compiled JavaScript (dist/app, made by scripts/build.mjs on install). A build
// older than its sources is rebuilt first, and says so: stale code never runs silently.
// Stack traces name the .ts lines (source maps).
import { ENTRY, isStale } from '../scripts/stale.mjs'

process.setSourceMapsEnabled(true)
const stale = isStale()
if (stale) {
  process.stderr.write(`mssp-portal: ${stale}: rebuilding dist/app (npm run build)\n`)
  try {
    const { build } = await import('../scripts/build.mjs')
    await build()
  } catch (err) {
    process.stderr.write(`mssp-portal: cannot rebuild: ${err instanceof Error ? err.message : err}\n`)
    process.exit(1)
  }
}
await import(ENTRY)
