// Entry point of the single executable (scripts/build-binary.mjs bundles from here). The
// CLI is the same module that the npm scripts run; src/lib/paths.ts finds the files that the
// executable carries (src/sea/assets.ts extracts them on its first use).
import '../cli.ts'
