// Support for the browser tests: drives Chromium through playwright-core against a portal
// process (test/support/portal-process.ts). Not a test file itself (tap runs only *.test.ts).
import fs from 'node:fs'
import { chromium, type Browser, type BrowserContext, type Locator, type Page } from 'playwright-core'
import type { Test } from 'tap'
import type { Tap } from '../helper.ts'
import { PASSWORD } from '../support/fixtures.ts'
import type { PortalProcess } from '../support/portal-process.ts'

export const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium'
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
]

/** The walks run twice: with JavaScript, and without it (every page must work either way). */
export const MODES = [
  { name: 'with JavaScript', javaScriptEnabled: true },
  { name: 'without JavaScript', javaScriptEnabled: false },
] as const
export type Mode = (typeof MODES)[number]

/**
 * True when Chromium is there. Without it the file is skipped with a reason, except in CI
 * (CI=true), where a missing browser is a failure rather than a silent skip.
 */
export function browserAvailable(t: Test): boolean {
  if (fs.existsSync(CHROMIUM)) return true
  const reason = `browser tests skipped: ${CHROMIUM} not found (install it: apt-get install -y chromium)`
  if (process.env.CI && process.env.CI !== 'false') {
    t.fail(`${reason}; CI must run them`)
  } else {
    t.plan(0, reason)
  }
  return false
}

/** Launches Chromium (playwright's own fresh temporary profile); closed with the test. */
export async function launchBrowser(t: Tap): Promise<Browser> {
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true })
  t.teardown(() => browser.close())
  return browser
}

export interface Session {
  context: BrowserContext
  page: Page
  /** Page errors, console errors (CSP violations included) and 5xx answers seen so far. */
  problems: string[]
}

/** A fresh browser context (own cookies) with one page, in the given mode. */
export async function newSession(t: Tap, browser: Browser, portal: PortalProcess, mode: Mode): Promise<Session> {
  const context = await browser.newContext({ baseURL: portal.baseUrl, javaScriptEnabled: mode.javaScriptEnabled })
  context.setDefaultTimeout(10_000)
  context.setDefaultNavigationTimeout(15_000)
  t.teardown(() => context.close())
  const page = await context.newPage()
  const problems: string[] = []
  page.on('pageerror', (err) => problems.push(`page error: ${err.message}`))
  page.on('console', (msg) => {
    // A 4xx answer (401 for a wrong password, 410 for a used link) is logged by Chromium as
    // "Failed to load resource"; those are expected, anything else is a problem.
    if (msg.type() === 'error' && !/status of 4\d\d/.test(msg.text())) problems.push(`console error: ${msg.text()}`)
  })
  page.on('response', (res) => {
    if (res.status() >= 500) problems.push(`${res.status()} from ${res.url()}`)
  })
  return { context, page, problems }
}

/**
 * Whether the locator shows within the default timeout (what `waitFor()` waits for), as a value
 * to assert, so that a miss fails the assertion with its message rather than as a bare timeout.
 */
export async function appears(locator: Locator): Promise<boolean> {
  return locator.waitFor().then(
    () => true,
    () => false,
  )
}

/** The portal's session cookie as the browser keeps it. */
export async function sessionCookie(context: BrowserContext) {
  return (await context.cookies()).find((c) => c.name === 'mssp_session')
}

/** Signs in through the Log in page by its labels, as a user would. */
export async function signIn(page: Page, username: string, password = PASSWORD, rememberMe = false): Promise<void> {
  await page.goto('/login')
  await page.getByLabel('Username', { exact: true }).fill(username)
  await page.getByLabel('Password', { exact: true }).fill(password)
  if (rememberMe) await page.getByLabel('Remember Me', { exact: true }).check()
  await page.getByRole('button', { name: 'Sign In' }).click()
  await page.waitForLoadState()
}
