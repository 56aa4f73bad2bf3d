import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify'
import { z } from 'zod'
import { ValidationError } from '../../lib/errors.ts'
import { MAX_LOGO_HEIGHT, MAX_LOGO_WIDTH } from '../../lib/png.ts'
import { actorOf, flash, isHtmx, redirect } from '../../plugins/session.ts'
import { LOGO_UPLOAD_OPTIONS, readLogoForm, sendLogoImage } from './http.ts'
import * as repo from './repository.ts'
import * as service from './service.ts'

const CHANGED = 'logos-changed'

const logoParams = z.object({ uuid: z.string() })
// `?replace=1`: the ✕ next to the current file was used; offer Add File instead.
const editQuery = z.object({ replace: z.string().optional().catch(undefined) })

/** The Logos pages (Administrator), and the logo images the Accounts table shows. */
const routes: FastifyPluginAsync = async (app) => {
  const limits = { maxWidth: MAX_LOGO_WIDTH, maxHeight: MAX_LOGO_HEIGHT }

  app.get('/logos', { config: { access: 'administrator' } }, async (request, reply) => {
    const logos = await repo.listLogos(app.db)
    return reply.render('logos/index', { title: 'Logos', logos }, { fragment: 'logos/_table' })
  })

  // Add Logo
  function renderAdd(reply: FastifyReply, extra: Record<string, unknown> = {}, status?: number) {
    return reply.render('logos/add', { title: 'Add Logo', values: { name: '' }, ...limits, ...extra }, { fragment: 'logos/_add', status })
  }

  app.get('/logos/new', { config: { access: 'administrator' } }, async (_request, reply) => renderAdd(reply))

  app.post('/logos', { config: { access: 'administrator', multipartOptions: LOGO_UPLOAD_OPTIONS } }, async (request, reply) => {
    const form = readLogoForm(request.body)
    try {
      await service.createLogo(app.db, actorOf(request), form)
    } catch (err) {
      if (!(err instanceof ValidationError)) throw err
      return renderAdd(reply, { errors: err.fieldErrors, alert: err.message, values: { name: form.name ?? '' } }, 422)
    }
    return done(request, reply, 'Logo created successfully')
  })

  // Edit Logo
  function renderEdit(reply: FastifyReply, logo: repo.LogoRow, extra: Record<string, unknown> = {}, status?: number) {
    return reply.render('logos/edit', { title: 'Edit Logo', logo, replace: false, values: { name: logo.name }, ...limits, ...extra }, { fragment: 'logos/_edit', status })
  }

  app.get('/logos/:uuid/edit', { config: { access: 'administrator' } }, async (request, reply) => {
    const logo = await service.requireLogo(app.db, logoParams.parse(request.params).uuid)
    const replace = editQuery.parse(request.query ?? {}).replace === '1'
    return renderEdit(reply, logo, { replace })
  })

  app.post('/logos/:uuid/edit', { config: { access: 'administrator', multipartOptions: LOGO_UPLOAD_OPTIONS } }, async (request, reply) => {
    const logo = await service.requireLogo(app.db, logoParams.parse(request.params).uuid)
    const form = readLogoForm(request.body)
    try {
      await service.editLogo(app.db, actorOf(request), logo, form, { requireName: true })
    } catch (err) {
      if (!(err instanceof ValidationError)) throw err
      // A refused new file leaves the file input showing, so that another can be chosen.
      const replace = form.replace || form.file !== undefined
      return renderEdit(reply, logo, { errors: err.fieldErrors, alert: err.message, values: { name: form.name ?? '' }, replace }, 422)
    }
    return done(request, reply, 'Logo changes saved successfully')
  })

  // Delete: a confirmation (plane with htmx, page without), then the deletion.
  app.get('/logos/:uuid/delete', { config: { access: 'administrator' } }, async (request, reply) => {
    const logo = await service.requireLogo(app.db, logoParams.parse(request.params).uuid)
    const accounts = await repo.countAccountsUsingLogo(app.db, logo.id)
    return reply.render('logos/delete', { title: 'Delete Logo', logo, accounts }, { fragment: 'logos/_delete' })
  })

  app.post('/logos/:uuid/delete', { config: { access: 'administrator' } }, async (request, reply) => {
    const logo = await service.requireLogo(app.db, logoParams.parse(request.params).uuid)
    await service.deleteLogo(app.db, actorOf(request), logo)
    return done(request, reply, 'Logo deleted successfully')
  })

  // The image itself: any logo for Administrators, otherwise only one shown on an account
  // assigned to the user (404 for any other, the same as for a missing logo).
  app.get('/logos/:uuid/logo.png', { config: { access: 'user' } }, async (request, reply) => sendLogoImage(request, reply, logoParams.parse(request.params).uuid))

  /** A finished action: the plane closes with the message (htmx), or a redirect with a flash. */
  async function done(request: FastifyRequest, reply: FastifyReply, message: string) {
    if (isHtmx(request)) {
      reply.header('HX-Trigger', CHANGED)
      return reply.render('partials/plane-done', { message })
    }
    await flash(request, message)
    return redirect(request, reply, '/logos')
  }
}

export default routes
