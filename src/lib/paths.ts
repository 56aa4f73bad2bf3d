// Where the portal's files are: in the repository when run from it (npm scripts, tsx,
// tests), or in the folder that the single executable extracts its assets to (see
// src/sea/assets.ts and scripts/build-binary.mjs). The layout is the same in both.
import path from 'node:path'
import { seaAssetRoot, seaNativeAddonPath } from '../sea/assets.ts'

const sea = seaAssetRoot()

/** The repository root, or the single executable's extracted files. */
export const ROOT_DIR = sea ?? path.resolve(import.meta.dirname, '../..')

/** Eta templates of the portal. */
export const VIEWS_DIR = path.join(ROOT_DIR, 'views')
/** Files served at /static/. */
export const PUBLIC_DIR = path.join(ROOT_DIR, 'public')
/** htmx's dist folder, served at /static/htmx/. */
export const HTMX_DIR = path.join(ROOT_DIR, 'node_modules', 'htmx.org', 'dist')
/** The demo customer instance's templates and files. */
export const DEMO_INSTANCE_VIEWS_DIR = path.join(ROOT_DIR, 'src', 'demo-instance', 'views')
export const DEMO_INSTANCE_PUBLIC_DIR = path.join(ROOT_DIR, 'src', 'demo-instance', 'public')

/**
 * better-sqlite3's `nativeBinding` option: its addon inside the single executable, or
 * undefined (better-sqlite3 finds its own build) otherwise.
 */
export const SQLITE_NATIVE_BINDING: string | undefined = sea ? seaNativeAddonPath('better-sqlite3') : undefined
