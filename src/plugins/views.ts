import fp from 'fastify-plugin'
import { Eta } from 'eta'
import type { FastifyReply } from 'fastify'
import { ADMINISTRATOR, ROLES, ROLE_PERMISSIONS, roleLabel } from '../lib/roles.ts'
import { isHtmx, takeFlash } from './session.ts'
import * as fmt from '../lib/format.ts'

declare module 'fastify' {
  interface FastifyReply {
    /**
     * Renders a page, or only its fragment when htmx asks (one URL serves both;
     * `Vary: HX-Request` keeps caches apart).
     */
    render(page: string, data?: Record<string, unknown>, opts?: { fragment?: string; status?: number }): Promise<FastifyReply>
  }
}

import { VIEWS_DIR } from '../lib/paths.ts'
export { VIEWS_DIR }

export interface ViewsOptions {
  /** The Resource Center menu's links, shown to signed-in users (from the settings area, by app.ts). */
  resourceLinks(): Promise<ReadonlyArray<{ label: string; href: string }>>
}

export default fp<ViewsOptions>(async (app, options) => {
  // Eta itself, called directly: templates are cached once compiled (re-read in development).
  const eta = new Eta({ views: VIEWS_DIR, cache: app.config.env !== 'development', autoEscape: true })

  app.decorateReply('render', async function (this: FastifyReply, page, data = {}, opts = {}) {
    const request = this.request
    // A session that still owes its second factor sees the signed-out layout.
    const auth = request.auth?.session?.pending_2fa === 1 ? null : request.auth
    const wantsFragment = Boolean(opts.fragment) && isHtmx(request) && request.headers['hx-boosted'] !== 'true'
    this.header('Vary', 'HX-Request')
    if (opts.status) this.code(opts.status)
    const locals = {
      user: auth?.user ?? null,
      roleLabel: auth ? roleLabel(auth.user.role) : null,
      isAdmin: auth?.user.role === ADMINISTRATOR,
      flash: wantsFragment ? null : await takeFlash(request),
      csrf: () => request.csrfToken(),
      path: request.url.split('?')[0],
      resourceLinks: auth ? await options.resourceLinks() : [],
      productName: 'MSSP Portal',
      fmt,
      roles: ROLES,
      rolePermissions: ROLE_PERMISSIONS,
      roleName: roleLabel,
      assistedBy: auth?.assistedBy ?? null,
      /** aria attributes tying an invalid field to its message (field names are ours, not input). */
      errorAttrs: (errors: Record<string, string> | undefined, field: string) =>
        errors?.[field] ? ` aria-describedby="${field}-error" aria-invalid="true"` : '',
    }
    const html = eta.render(wantsFragment ? opts.fragment! : page, { ...locals, ...data })
    // Encoded once here: a string would be measured (Content-Length) and then encoded again,
    // and pages holding a character past U+00FF (✎, “) make both passes slow.
    return this.type('text/html; charset=utf-8').send(Buffer.from(html))
  })
})
