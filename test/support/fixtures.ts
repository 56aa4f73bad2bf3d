// Values several test files share, defined once. Plain literals on purpose: a test states
// what the portal must accept, it does not read it back from src/.

/** The first Administrator of a portal process started by the tests (MSSP_ADMIN_USERNAME). */
export const ADMIN_USERNAME = 'admin@example.com'
/** The password of every user the tests create, unless a test gives another. */
export const PASSWORD = 'Correct-Horse-42-Battery'
/** The first Administrator's password where an operator types it (setup, create-admin), unlike any test user's. */
export const ADMIN_PASSWORD = 'Harbor-Lights-31-Copper'
/** A password to change to: both rules accept it (the user's own and an Administrator's). */
export const NEW_PASSWORD = 'Fresh-Meadow-77-Lantern'

/** Permission levels, by the guide's names. */
export const BASIC = 16
export const STANDARD = 32
export const ADMINISTRATOR = 64
export const NON_ADMIN_ROLES = [16, 24, 32, 40]

/** The header htmx sends with its requests (a fragment is wanted, not the whole page). */
export const HTMX = { 'hx-request': 'true' }
