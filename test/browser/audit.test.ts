// The Audit Log in a real browser: an Administrator opens it from the navigation plane,
// filters by action, pages and exports, with JavaScript (htmx swaps the results) and
// without it (a plain GET form).
import t from 'tap'
import crypto from 'node:crypto'
import type { Page } from 'playwright-core'
import { ADMIN_USERNAME } from '../support/fixtures.ts'
import { startPortal, type PortalProcess as Portal } from '../support/portal-process.ts'
import { MODES, browserAvailable, launchBrowser, newSession, signIn } from './chromium.ts'

t.setTimeout(180_000)

/** Past events written straight into the portal's database, as the portal records them. */
function seedEvents(portal: Portal) {
  const base = Date.UTC(2024, 4, 1, 9)
  portal.withDb((db) => {
    const insert = db.prepare(`insert into audit_events (id, created_at, actor_user_id, actor_name, assisting_user_id, assisting_name, action, outcome, target_type, target_id, target_name, ip, fields)
      values (?, ?, null, ?, null, ?, ?, ?, ?, ?, ?, ?, ?)`)
    db.transaction(() => {
      for (let i = 0; i < 60; i++) {
        insert.run(crypto.randomUUID(), base + i * 60_000, 'sofia@example.com', null, 'account.update', 'success', 'account', crypto.randomUUID(), `Customer ${String(i).padStart(2, '0')}`, '203.0.113.8', JSON.stringify({ changed: 'notes', notes_changed: true }))
      }
      insert.run(crypto.randomUUID(), base + 90 * 60_000, 'marcus@example.com', ADMIN_USERNAME, 'logo.create', 'success', 'logo', crypto.randomUUID(), 'Acme Wordmark', '198.51.100.4', JSON.stringify({ filename: 'acme.png' }))
      insert.run(crypto.randomUUID(), base + 91 * 60_000, null, null, 'auth.sign_in', 'failure', null, null, null, '192.0.2.66', JSON.stringify({ username: 'ghost@example.com', reason: 'unknown user' }))
    })()
  })
}

/** The Audit Log through the left navigation plane. */
async function openAuditLog(page: Page) {
  await page.goto('/accounts')
  await page.getByLabel('Navigation', { exact: true }).click()
  await page.locator('nav.nav-plane').getByRole('link', { name: 'Audit Log', exact: true }).click()
  await page.waitForURL('**/audit-log')
}

/** The Action code of each row (the second line of the Action cell). */
async function rowActions(page: Page): Promise<string[]> {
  return page.locator('#audit-results tbody tr td:nth-child(4) code').allTextContents()
}

if (browserAvailable(t)) {
  const portal = await startPortal(t)
  const registered = (await fetch(`${portal.baseUrl}/audit-log`, { redirect: 'manual' })).status !== 404
  if (!registered) {
    // src/app.ts registers the audit area; a portal without it has nothing to walk through.
    const reason = 'browser walk skipped: this portal has no /audit-log (src/app.ts does not register the audit routes)'
    if (process.env.CI && process.env.CI !== 'false') t.fail(reason)
    else t.plan(0, reason)
  } else {
    seedEvents(portal)
    const browser = await launchBrowser(t)

    for (const mode of MODES) {
      const js = mode.javaScriptEnabled

      t.test(`${mode.name}: an Administrator opens the Audit Log and filters by action`, async (t) => {
        const { page, problems } = await newSession(t, browser, portal, mode)
        await signIn(page, ADMIN_USERNAME)
        await openAuditLog(page)
        t.equal(await page.locator('h1').textContent(), 'Audit Log', 'the page heading is Audit Log')
        t.equal(await page.title(), 'Audit Log · MSSP Portal', 'the window title names the page and the portal')
        const headers = await page.locator('#audit-results thead th').allTextContents()
        t.same(headers, ['Time (UTC)', 'Actor', 'Assisting Administrator', 'Action', 'Outcome', 'Target', 'IP Address', 'Details'], 'the columns as the user guide names them')

        // Newest first: this session's own sign-in heads the list.
        const first = page.locator('#audit-results tbody tr').first()
        t.match(await first.textContent(), new RegExp(`${ADMIN_USERNAME.replace('.', '\\.')}[\\s\\S]*Sign in[\\s\\S]*auth\\.sign_in[\\s\\S]*Success`), 'the newest event is this session\'s sign-in')
        t.equal(await page.locator('#audit-results tbody tr').count(), 50, 'a page of 50')
        const assisted = page.getByRole('row', { name: /Acme Wordmark/ })
        t.match(await assisted.textContent(), new RegExp(`marcus@example\\.com[\\s\\S]*${ADMIN_USERNAME.replace('.', '\\.')}[\\s\\S]*Logo added`), 'the assisting Administrator')
        t.match(await page.getByRole('row', { name: /ghost@example\.com/ }).textContent(), /Anonymous[\s\S]*Failure[\s\S]*192\.0\.2\.66[\s\S]*username=ghost@example\.com reason="unknown user"/, 'a failed sign-in: Anonymous, the IP address and the reason')

        // Filter by action: the select lists the actions found in the log, by name.
        const options = await page.getByLabel('Action', { exact: true }).locator('option').allTextContents()
        t.ok(options.includes('Account updated') && options.includes('Sign in') && options.includes('Logo added'), 'the actions in the log')
        await page.getByLabel('Action', { exact: true }).selectOption({ label: 'Account updated' })
        if (js) {
          // htmx applies the filter on change and keeps it in the address (only the filters in use).
          await page.waitForURL((url) => url.search === '?action=account.update')
          await page.getByText('60 events match the filters').waitFor()
        } else {
          await page.getByRole('button', { name: 'Apply Filters' }).click()
          await page.waitForURL(/action=account\.update/)
        }
        t.match(await page.locator('.result-count').textContent(), /60 events match the filters/, 'the filter counts 60 events')
        const codes = await rowActions(page)
        t.equal(codes.length, 50, 'a full first page of 50')
        t.ok(codes.every((c) => c === 'account.update'), 'only account updates')
        t.match(await page.locator('#audit-results tbody tr').first().locator('td').nth(5).textContent(), /^\s*Customer 59(?!\d)/, 'newest first')
        t.equal(await page.getByRole('link', { name: 'Export CSV' }).getAttribute('href'), '/audit-log/export.csv?action=account.update', 'the export follows the filters')

        // Older: the last ten, the filter kept.
        await page.getByRole('link', { name: 'Older ›' }).click()
        await page.waitForURL(/before=/)
        t.match(page.url(), /action=account\.update&before=\d+_/, 'Older keeps the filter and pages by a cursor')
        t.equal((await rowActions(page)).length, 10, 'the older page holds the last 10')
        t.equal(await page.getByRole('link', { name: 'Older ›' }).count(), 0, 'the oldest page')
        // Newer: back to the newest fifty (with htmx, at the address of the newest page).
        await page.getByRole('link', { name: '‹ Newer' }).click()
        await page.getByRole('link', { name: 'Older ›' }).waitFor()
        t.equal((await rowActions(page)).length, 50, 'Newer goes back to 50 events')
        t.equal(await page.getByRole('link', { name: '‹ Newer' }).count(), 0, 'the newest page')
        if (js) t.equal(new URL(page.url()).search, '?action=account.update', 'the newest page\'s address keeps only the filter')

        // Back to every action: the form still works after the swaps.
        await page.getByLabel('Action', { exact: true }).selectOption({ label: 'All actions' })
        if (!js) await page.getByRole('button', { name: 'Apply Filters' }).click()
        await page.waitForURL((url) => !/action=[^&]/.test(url.search))
        await page.locator('.result-count', { hasText: /^\d+ events$/ }).waitFor()
        t.match(await page.locator('.result-count').textContent(), /^6\d events$/, 'without a filter the count is the whole log')

        // The export as the browser downloads it.
        const download = page.waitForEvent('download')
        await page.getByRole('link', { name: 'Export CSV' }).click()
        const file = await download
        t.match(file.suggestedFilename(), /^audit-log-\d{4}-\d{2}-\d{2}\.csv$/, 'the CSV is named by date')
        t.same(problems, [], 'no errors in the page')
      })
    }
  }
}
