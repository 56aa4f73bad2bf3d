import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify'
import { z } from 'zod'
import { ConflictError, NotFoundError, ValidationError } from '../../lib/errors.ts'
import { actorOf, flash, isHtmx, redirect } from '../../plugins/session.ts'
import { LICENSED_APPS, appLabel, parseApps } from './licensed-apps.ts'
import * as repo from './repository.ts'
import { countAccounts, listAccountsPage } from './search-plans.ts'
import * as service from './service.ts'
import { type ListQuery, assignLogoForm, editAccountForm, listQuerySchema, newAccountForm, saveSearchForm, toAccountQuery, uuidParams } from './forms.ts'
import { listLogoChoices, findLogoByUuid } from '../logos/repository.ts'
import * as saved from './saved-searches.ts'
import { ssoUnavailableReason } from '../instances/service.ts'

function stateParams(q: ListQuery) {
  return { q: q.q, sort: q.sort === 'container_name' ? undefined : q.sort, dir: q.dir === 'asc' ? undefined : q.dir, app: q.app, region: q.region, expires: q.expires }
}

const routes: FastifyPluginAsync = async (app) => {
  async function listData(request: FastifyRequest, q: ListQuery) {
    const query = toAccountQuery(q)
    const { accounts, total, more, page } = await listAccountsPage(app.db, app.dialect, actorOf(request).user, query, q.page, service.PAGE_SIZE, service.COUNT_CAP)
    const pages = Math.max(1, Math.ceil(total / service.PAGE_SIZE))
    return { accounts, total, more, page, pages, q, state: stateParams(q), apps: LICENSED_APPS, appLabel, parseApps, pageSize: service.PAGE_SIZE, marks: service.ROW_MARKS, expiryDays: service.EXPIRY_FILTER_DAYS, ssoReason: (a: Parameters<typeof ssoUnavailableReason>[1]) => ssoUnavailableReason(app, a) }
  }

  app.get('/accounts', { config: { access: 'user' } }, async (request, reply) => {
    const q = listQuerySchema.parse(request.query ?? {})
    const at = request.url.indexOf('?')
    const currentQuery = saved.normaliseQuery(at === -1 ? '' : request.url.slice(at + 1))
    const data = await listData(request, q)
    const htmx = isHtmx(request)
    const { user } = actorOf(request)
    const regions = htmx ? [] : await repo.distinctRegions(app.db, user)
    const savedSearches = htmx ? [] : await saved.listSavedSearches(app.db, user.id)
    return reply.render('accounts/index', { title: 'Accounts', ...data, regions, savedSearches, currentQuery }, { fragment: 'accounts/_results' })
  })

  // Saved searches: a user's own named searches of the Accounts page.
  app.post('/accounts/saved-searches', { config: { access: 'user' } }, async (request, reply) => {
    const { name, query } = saveSearchForm.parse(request.body)
    try {
      await saved.saveSearch(app.db, actorOf(request), { name, query })
    } catch (err) {
      if (err instanceof ValidationError || err instanceof ConflictError) {
        const message = err instanceof ValidationError ? Object.values(err.fieldErrors)[0] ?? err.message : err.message
        const q = listQuerySchema.parse(Object.fromEntries(new URLSearchParams(saved.normaliseQuery(query))))
        const data = await listData(request, q)
        reply.code(422)
        return reply.render('accounts/index', { title: 'Accounts', ...data, regions: await repo.distinctRegions(app.db, actorOf(request).user), savedSearches: await saved.listSavedSearches(app.db, actorOf(request).user.id), currentQuery: saved.normaliseQuery(query), saveError: message, saveName: String(name ?? '') })
      }
      throw err
    }
    await flash(request, 'Search saved.')
    return redirect(request, reply, `/accounts${query ? `?${saved.normaliseQuery(query)}` : ''}`)
  })

  app.post('/accounts/saved-searches/:uuid/delete', { config: { access: 'user' } }, async (request, reply) => {
    const params = z.object({ uuid: z.uuid() }).safeParse(request.params)
    if (!params.success) throw new NotFoundError()
    await saved.deleteSavedSearch(app.db, actorOf(request), params.data.uuid)
    await flash(request, 'Saved search deleted.')
    return redirect(request, reply, '/accounts')
  })

  // Add Account (Administrator; beyond the guide): every field of the account object.
  const blankAccount = { ...newAccountForm.parse({}), licensed_assets: '0', licensed_assets_limit: '0' }
  app.get('/accounts/new', { config: { access: 'administrator' } }, async (_request, reply) =>
    reply.render('accounts/new', { title: 'Add Account', values: blankAccount, apps: LICENSED_APPS }, { fragment: 'accounts/_new' }),
  )

  app.post('/accounts/new', { config: { access: 'administrator' } }, async (request, reply) => {
    const values = newAccountForm.parse(request.body)
    const expiry = values.license_expiration ? Date.parse(`${values.license_expiration}T00:00:00Z`) : null
    const input = {
      ...values,
      licensed_assets: service.numberFromForm(values.licensed_assets),
      licensed_assets_limit: service.numberFromForm(values.licensed_assets_limit),
      // A browser posts every field; an empty Instance URL or Contact Email is none.
      instance_url: values.instance_url || null,
      contact_email: values.contact_email || null,
      license_expiration_date: expiry,
      domains: values.domains.split(/[\s,]+/).filter(Boolean),
    }
    try {
      if (values.license_expiration && Number.isNaN(expiry)) throw new ValidationError({ license_expiration: 'Enter the date as YYYY-MM-DD.' })
      await service.createAccount(app.db, actorOf(request), input)
    } catch (err) {
      if (!(err instanceof ValidationError)) throw err
      const errors = { ...err.fieldErrors }
      if (errors.license_expiration_date) errors.license_expiration = errors.license_expiration_date
      return reply.render('accounts/new', { title: 'Add Account', values, apps: LICENSED_APPS, errors, alert: err.message }, { fragment: 'accounts/_new', status: 422 })
    }
    const message = 'Account created successfully'
    if (isHtmx(request)) {
      reply.header('HX-Trigger', 'accounts-changed')
      return reply.render('partials/plane-done', { message })
    }
    await flash(request, message)
    return redirect(request, reply, '/accounts')
  })

  // Account Details for Support Ticket (Administrator)
  app.get('/accounts/:uuid/details', { config: { access: 'administrator' } }, async (request, reply) => {
    const account = await service.requireVisibleAccount(app.db, actorOf(request), uuidParams.parse(request.params).uuid)
    const assignedUsers = await repo.assignedUserCount(app.db, account.id)
    return reply.render('accounts/details', { title: 'Account Details for Support Ticket', account, assignedUsers, appLabel, parseApps }, { fragment: 'accounts/_details' })
  })

  async function renderEdit(request: FastifyRequest, reply: FastifyReply, account: Awaited<ReturnType<typeof service.requireVisibleAccount>>, extra: Record<string, unknown> = {}, status?: number) {
    const history = await repo.nameHistory(app.db, account.id)
    return reply.render('accounts/edit', { title: 'Edit Account', account, history, values: { custom_name: account.custom_name ?? '', notes: account.notes }, ...extra }, { fragment: 'accounts/_edit', status })
  }

  app.get('/accounts/:uuid/edit', { config: { access: 'administrator' } }, async (request, reply) => {
    const account = await service.requireVisibleAccount(app.db, actorOf(request), uuidParams.parse(request.params).uuid)
    return renderEdit(request, reply, account)
  })

  app.post('/accounts/:uuid/edit', { config: { access: 'administrator' } }, async (request, reply) => {
    const account = await service.requireVisibleAccount(app.db, actorOf(request), uuidParams.parse(request.params).uuid)
    const input = editAccountForm.parse(request.body)
    try {
      await service.editAccount(app.db, actorOf(request), account, input)
    } catch (err) {
      if (!(err instanceof ValidationError)) throw err
      return renderEdit(request, reply, account, { errors: err.fieldErrors, alert: err.message, values: { custom_name: account.custom_name ?? '', notes: account.notes, ...input } }, 422)
    }
    if (isHtmx(request)) {
      const updated = await service.requireVisibleAccount(app.db, actorOf(request), account.uuid)
      reply.header('HX-Trigger', 'accounts-changed')
      return renderEdit(request, reply, updated, { saved: 'Account changes saved successfully.' })
    }
    await flash(request, 'Account changes saved successfully.')
    return redirect(request, reply, '/accounts')
  })

  // Assign Logo to Accounts (Administrator): the ☆ button of the Selected bar, for the
  // checked accounts or (all=1) for every account matching the search.
  async function assignTarget(request: FastifyRequest, source: unknown) {
    const { all, account } = assignLogoForm.parse(source)
    if (all !== '1') return { uuids: account, all: null }
    const q = listQuerySchema.parse(source)
    const query = toAccountQuery(q)
    const total = await countAccounts(app.db, app.dialect, actorOf(request).user, query)
    return { uuids: [] as string[], all: { total, query, state: stateParams(q) } }
  }

  app.get('/accounts/assign-logo', { config: { access: 'administrator' } }, async (request, reply) => {
    const target = await assignTarget(request, request.query)
    const logos = await listLogoChoices(app.db)
    return reply.render('accounts/assign-logo', { title: 'Assign Logo to Accounts', ...target, logos }, { fragment: 'accounts/_assign-logo' })
  })

  app.post('/accounts/assign-logo', { config: { access: 'administrator' } }, async (request, reply) => {
    const target = await assignTarget(request, request.body)
    const logoUuid = assignLogoForm.parse(request.body).logo
    const logos = await listLogoChoices(app.db)
    const logo = logoUuid ? await findLogoByUuid(app.db, logoUuid) : null
    const nothing = target.all ? target.all.total === 0 : target.uuids.length === 0
    const problem = nothing ? 'Select at least one account.' : logoUuid && !logo ? 'Select a logo from the list.' : null
    if (problem) {
      return reply.render('accounts/assign-logo', { title: 'Assign Logo to Accounts', ...target, logos, alert: problem }, { fragment: 'accounts/_assign-logo', status: 422 })
    }
    await service.assignLogo(app, actorOf(request), target.all ? target.all.query : target.uuids, logo ?? null)
    const message = 'Logo assigned to all selected accounts'
    if (isHtmx(request)) {
      reply.header('HX-Trigger', 'accounts-changed')
      return reply.render('partials/plane-done', { message })
    }
    await flash(request, message)
    return redirect(request, reply, '/accounts')
  })
}

export default routes
