import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify'
import { z } from 'zod'
import { ConflictError, ValidationError } from '../../lib/errors.ts'
import { actorOf, flash, isHtmx, redirect } from '../../plugins/session.ts'
import * as service from './service.ts'

type Card = 'domains' | 'two-factor' | 'links'

// The forms' fields as typed; anything but a string counts as empty (the service says what is wrong).
const field = z.string().catch('')
const domainForm = z.object({ domain: field })
const twoFactorForm = z.object({ require_2fa: field })
const linkForm = z.object({ version: field, label: field, href: field, index: field, direction: field })

/** Each card of the page is a fragment of its own: htmx forms swap only their card. */
const FRAGMENTS: Record<Card, string> = {
  domains: 'settings/_domains',
  'two-factor': 'settings/_two-factor',
  links: 'settings/_links',
}

// Settings (Administrator): approved domains, the require-2FA switch, the Resource Center links.
const routes: FastifyPluginAsync = async (app) => {
  const admin = { config: { access: 'administrator' as const } }

  /**
   * The whole page (or, for htmx, one card) with the current values. `state` carries a card's
   * messages and the values typed into its form.
   */
  async function renderPage(request: FastifyRequest, reply: FastifyReply, card: Card | null, state: Record<string, unknown> = {}, status?: number) {
    const [domains, settings, links, twoFactorCounts] = await Promise.all([
      service.listDomains(app.db),
      service.getSettings(app.db),
      service.resourceLinksState(app.db),
      service.countUsersWithout2fa(app.db),
    ])
    return reply.render(
      'settings/index',
      {
        title: 'Settings',
        domains,
        domainValue: '',
        require2fa: settings.require2fa,
        twoFactorCounts,
        selfHas2fa: request.auth!.has2fa,
        smsAvailable: app.messenger.hasTransport('sms'),
        links,
        linkValues: { label: '', href: '' },
        maxLinks: service.MAX_RESOURCE_LINKS,
        card,
        ...state,
      },
      { fragment: card ? FRAGMENTS[card] : undefined, status },
    )
  }

  /** A change went through: the card again with the message (htmx), or a redirect with a flash. */
  async function done(request: FastifyRequest, reply: FastifyReply, card: Card, message: string) {
    if (isHtmx(request)) return renderPage(request, reply, card, { saved: { [card]: message } })
    await flash(request, message)
    return redirect(request, reply, `/settings#settings-${card}`)
  }

  /** A refused change: the page (or card) with the reason, and nothing changed. */
  function refused(request: FastifyRequest, reply: FastifyReply, card: Card, err: ValidationError | ConflictError, state: Record<string, unknown> = {}) {
    const errors = err instanceof ValidationError ? err.fieldErrors : {}
    return renderPage(request, reply, card, { errors: { [card]: errors }, alerts: { [card]: err.message }, ...state }, err.statusCode)
  }

  app.get('/settings', admin, async (request, reply) => renderPage(request, reply, null))

  // Approved domains
  app.post('/settings/domains', admin, async (request, reply) => {
    const typed = domainForm.parse(request.body ?? {}).domain
    let domain: string
    try {
      domain = await service.addDomain(app.db, actorOf(request), typed)
    } catch (err) {
      if (err instanceof ValidationError) return refused(request, reply, 'domains', err, { domainValue: typed })
      throw err
    }
    return done(request, reply, 'domains', `${domain} was added to the approved domains.`)
  })

  app.post('/settings/domains/remove', admin, async (request, reply) => {
    let domain: string
    try {
      domain = await service.removeDomain(app.db, actorOf(request), domainForm.parse(request.body ?? {}).domain)
    } catch (err) {
      if (err instanceof ValidationError) return refused(request, reply, 'domains', err)
      throw err
    }
    return done(request, reply, 'domains', `${domain} was removed from the approved domains.`)
  })

  // Require two-factor authentication
  app.post('/settings/two-factor', admin, async (request, reply) => {
    const value = twoFactorForm.parse(request.body ?? {}).require_2fa
    if (value !== 'on' && value !== 'off') {
      return refused(request, reply, 'two-factor', new ValidationError({ require_2fa: 'Choose On or Off.' }, 'Nothing was saved: choose On or Off.'))
    }
    const changed = await service.changeRequire2fa(app.db, actorOf(request), value === 'on')
    const message = !changed
      ? `Nothing changed: two-factor authentication was already ${value === 'on' ? 'required' : 'optional'}.`
      : value === 'on'
        ? 'Two-factor authentication is now required. Users without it are sent to set it up when they next use the portal.'
        : 'Two-factor authentication is now optional.'
    // Turning it on without a second factor of one's own: the next page is the setup.
    if (changed && value === 'on' && !request.auth!.has2fa && request.auth!.via === 'session') {
      await flash(request, message)
      return redirect(request, reply, '/my-account?setup=required')
    }
    return done(request, reply, 'two-factor', message)
  })

  // Resource Center links
  async function linkEdit(request: FastifyRequest, reply: FastifyReply, change: () => Promise<string>, state: Record<string, unknown> = {}) {
    let message: string
    try {
      message = await change()
    } catch (err) {
      if (err instanceof ValidationError || err instanceof ConflictError) return refused(request, reply, 'links', err, err instanceof ConflictError ? {} : state)
      throw err
    }
    return done(request, reply, 'links', message)
  }

  app.post('/settings/links', admin, async (request, reply) => {
    const form = linkForm.parse(request.body ?? {})
    const values = { label: form.label, href: form.href }
    return linkEdit(request, reply, async () => {
      const link = await service.addResourceLink(app.db, actorOf(request), form.version, values)
      return `“${link.label}” was added to the Resource Center.`
    }, { linkValues: values })
  })

  app.post('/settings/links/remove', admin, async (request, reply) =>
    linkEdit(request, reply, async () => {
      const form = linkForm.parse(request.body ?? {})
      const link = await service.removeResourceLink(app.db, actorOf(request), form.version, form.index)
      return `“${link.label}” was removed from the Resource Center.`
    }),
  )

  app.post('/settings/links/move', admin, async (request, reply) =>
    linkEdit(request, reply, async () => {
      const form = linkForm.parse(request.body ?? {})
      const link = await service.moveResourceLink(app.db, actorOf(request), form.version, form.index, form.direction)
      return `“${link.label}” was moved ${form.direction}.`
    }),
  )

  app.post('/settings/links/reset', admin, async (request, reply) =>
    linkEdit(request, reply, async () => {
      await service.resetResourceLinks(app.db, actorOf(request))
      return 'The Resource Center shows the default links again.'
    }),
  )
}

export default routes
