import fp from 'fastify-plugin'
import helmet from 'helmet'

/** Security headers for every response; no-store for anything a signed-in user sees. */
export default fp(async function security(app) {
  const https = app.config.baseUrl.startsWith('https://')
  const setHeaders = helmet({
    contentSecurityPolicy: {
      useDefaults: false,
      directives: {
        defaultSrc: ["'self'"],
        scriptSrc: ["'self'"],
        styleSrc: ["'self'"],
        imgSrc: ["'self'", 'data:'],
        connectSrc: ["'self'"],
        formAction: ["'self'"],
        frameAncestors: ["'none'"],
        baseUri: ["'none'"],
        objectSrc: ["'none'"],
      },
    },
    strictTransportSecurity: https ? { maxAge: 31_536_000, includeSubDomains: true } : false,
    referrerPolicy: { policy: 'same-origin' },
    crossOriginEmbedderPolicy: false,
  })
  // On the raw response: a route may still replace one with reply.header() (the single
  // sign-on page widens form-action), which Fastify writes over these.
  app.addHook('onRequest', (request, reply, done) => {
    setHeaders(request.raw, reply.raw, (err) => done(err as Error | undefined))
  })
  app.addHook('onSend', (request, reply, _payload, done) => {
    if (request.auth && !reply.hasHeader('cache-control')) reply.header('Cache-Control', 'no-store')
    done()
  })
})
