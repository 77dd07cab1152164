# The realtime service image: one image runs a pod (the default) or a render worker, by its
# command. Node comes from the base image (the repository's `node` dev dependency is not
# installed); the web app is built here, so the image needs no dev dependencies.
#
#   docker build -t realtime .
#   docker run -p 8080:8080 -e JWT_SECRET=… -e REDIS_URL=redis://redis:6379 realtime
#   docker run -e JWT_SECRET=… -e REDIS_URL=redis://redis:6379 realtime worker
#   docker run -e JWT_SECRET=… realtime realtime check-config
#
# No container engine runs in this repository's tests: e2e/image/production-tree.test.ts reads
# this file, assembles the runtime stage's COPY lines in a temporary directory, runs its
# `npm ci` line there and starts the pod and the worker from that tree with NODE_ENV=production.
# Keep the runtime stage to plain COPY (no globs) and one `npm ci` RUN so it can.

# ---- build: all dependencies, the web app built into apps/web/dist --------------------------
FROM node:24-slim AS build
WORKDIR /app
COPY . .
# --ignore-scripts: the only install script wanted in a clone is the `node` dev dependency's
# download of Node 24, which this base image already is.
RUN npm ci --ignore-scripts --no-audit --no-fund \
 && node apps/web/build.ts --force

# ---- runtime: production dependencies, the service's sources, the built web app ------------
FROM node:24-slim AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini \
 && rm -rf /var/lib/apt/lists/*
ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=8080
WORKDIR /app

# Every workspace's manifest: `npm ci` checks the lockfile, which names them all; it installs
# only what the service (and the workspaces it uses) needs at run time.
COPY package.json package-lock.json ./
COPY packages/protocol/package.json packages/protocol/
COPY packages/server/package.json packages/server/
COPY packages/redis/package.json packages/redis/
COPY packages/fastify/package.json packages/fastify/
COPY packages/client/package.json packages/client/
COPY packages/react/package.json packages/react/
COPY packages/testkit/package.json packages/testkit/
COPY apps/jobs/package.json apps/jobs/
COPY apps/service/package.json apps/service/
COPY bench/package.json bench/
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund --workspace=@realtime/service \
 && npm cache clean --force

# What the pod and the worker load at run time (owned by root: the service only reads them).
COPY packages/protocol/src packages/protocol/src
COPY packages/server/src packages/server/src
COPY packages/redis/src packages/redis/src
COPY packages/fastify/src packages/fastify/src
COPY apps/jobs/src apps/jobs/src
COPY apps/service/src apps/service/src
COPY --from=build /app/apps/web/dist apps/web/dist

# V8's young generation capped at 16 MB per semi-space: uncapped it grows past 100 MB during a
# burst of accepts and stays there, ~7 KB of every idle stream's ~11 KB at 10k streams; capped,
# fan-out, publish and steady delivery cost the same (bench/README.md, Idle memory). Setting
# NODE_OPTIONS at run time replaces this: keep --max-semi-space-size=16 in it to keep the cap.
ENV NODE_OPTIONS=--max-semi-space-size=16

USER node
EXPOSE 8080
# What the pod drains on (SHUTDOWN_DRAIN_MS) and a worker finishes its jobs on; tini passes it on.
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 \
  CMD ["node", "/app/apps/service/src/container.ts", "healthcheck"]
ENTRYPOINT ["tini", "--", "node", "/app/apps/service/src/container.ts"]
CMD ["pod"]
