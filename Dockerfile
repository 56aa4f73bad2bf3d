# MSSP Portal: multi-stage image on a supported Node LTS (22, the single executable's line:
# better-sqlite3 12 aborts on Node 24 and 26 when statements are garbage-collected).
# Build: docker build -t mssp-portal .
# Run:   docker run -p 3000:3000 -v mssp-data:/data \
#          -e BASE_URL=https://portal.example.com \
#          -e MSSP_ADMIN_USERNAME=admin@example.com -e MSSP_ADMIN_PASSWORD='...' mssp-portal
# Stop:  docker stop -t 20 (SIGTERM: the 5 s drain, SHUTDOWN_DRAIN_SECONDS, plus up to 10 s
#        closing; Docker's default 10 s would SIGKILL a closing portal)

FROM node:22-bookworm-slim AS build
WORKDIR /app
# better-sqlite3 compiles from source (the same `npm ci` that CI runs); `prepare` compiles the
# portal to JavaScript in dist/app (esbuild), then the development packages are removed:
# the image runs the compiled build, without tsx or esbuild.
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json ./
COPY src ./src
COPY views ./views
COPY public ./public
COPY migrations ./migrations
COPY bin ./bin
COPY scripts ./scripts
COPY docs ./docs
RUN npm ci && npm prune --omit=dev && node bin/mssp-portal.js --version

FROM node:22-bookworm-slim
ENV NODE_ENV=production HOST=0.0.0.0 PORT=3000 DATA_DIR=/data
WORKDIR /app
COPY --from=build /app /app
RUN mkdir -p /data && chown node:node /data
USER node
VOLUME ["/data"]
EXPOSE 3000
# SIGTERM starts the drain, then a graceful close (docs/operations.md, "Graceful shutdown").
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s \
  CMD node -e "fetch('http://127.0.0.1:'+(process.env.PORT||3000)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
CMD ["node", "bin/mssp-portal.js", "serve"]
