// Remember Me in a real browser: the cookie is a browser-session cookie either way; without
// Remember Me the session ends after 30 minutes of inactivity, with it, it does not.
// Inactivity is simulated by moving sessions.last_seen_at back 31 minutes in the SQLite file.
import t from 'tap'
import { ADMIN_USERNAME } from '../support/fixtures.ts'
import { startPortal } from '../support/portal-process.ts'
import { MODES, browserAvailable, launchBrowser, newSession, sessionCookie, signIn } from './chromium.ts'

t.setTimeout(120_000)

if (browserAvailable(t)) {
  const portal = await startPortal(t)
  const browser = await launchBrowser(t)

  for (const mode of MODES) {
    t.test(`${mode.name}: Remember Me`, async (t) => {
      const plain = await newSession(t, browser, portal, mode)
      const remembered = await newSession(t, browser, portal, mode)
      await signIn(plain.page, ADMIN_USERNAME)
      await signIn(remembered.page, ADMIN_USERNAME, undefined, true)
      for (const [name, s] of [['without Remember Me', plain], ['with Remember Me', remembered]] as const) {
        t.equal(new URL(s.page.url()).pathname, '/accounts', `${name}: signed in`)
        const cookie = await sessionCookie(s.context)
        t.ok(cookie, `${name}: has the session cookie`)
        t.equal(cookie?.expires, -1, `${name}: a browser-session cookie (no expiry)`)
        t.equal(cookie?.httpOnly, true, `${name}: HttpOnly`)
        t.equal(cookie?.sameSite, 'Lax', `${name}: SameSite=Lax`)
      }

      const ids = portal.withDb((db) =>
        db
          .prepare('select s.id, s.remember_me from sessions s join users u on u.id = s.user_id where u.username = ?')
          .all(ADMIN_USERNAME) as { id: string; remember_me: number }[],
      )
      t.same(ids.map((r) => r.remember_me).sort(), [0, 1], 'one plain and one remembered session row')

      // 31 minutes without a request.
      const changed = portal.withDb((db) =>
        db.prepare('update sessions set last_seen_at = ? where id in (' + ids.map(() => '?').join(',') + ')').run(Date.now() - 31 * 60_000, ...ids.map((r) => r.id)).changes,
      )
      t.equal(changed, 2, 'both sessions aged')

      await plain.page.reload()
      t.equal(new URL(plain.page.url()).pathname, '/login', 'without Remember Me: back on the Log in page')
      t.ok(await plain.page.getByRole('button', { name: 'Sign In' }).isVisible(), 'the Sign In button is shown')
      await plain.page.goto('/accounts')
      t.equal(new URL(plain.page.url()).pathname, '/login', 'and the session is gone for good')

      await remembered.page.reload()
      t.equal(new URL(remembered.page.url()).pathname, '/accounts', 'with Remember Me: still signed in')
      t.equal(await remembered.page.locator('h1').first().textContent(), 'Accounts', 'the remembered session shows the Accounts page')

      const left = portal.withDb((db) => db.prepare('select remember_me from sessions where id in (' + ids.map(() => '?').join(',') + ')').all(...ids.map((r) => r.id)))
      t.same(left, [{ remember_me: 1 }], 'only the remembered session row is left')

      // Sign out the remembered one, so the next mode starts clean.
      await remembered.page.locator('details.user-menu summary').click()
      await remembered.page.getByRole('button', { name: 'Sign Out' }).click()
      await remembered.page.waitForURL('**/login?m=signed-out')
      t.same([...plain.problems, ...remembered.problems], [], 'no page errors, console errors or server errors')
    })
  }
}
