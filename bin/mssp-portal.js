#!/usr/bin/env node
// Runs the TypeScript CLI through tsx (the single executable bundles it instead).
import { register } from 'tsx/esm/api'
register()
await import('../src/cli.ts')
