# ugcfs image: one image for every role; the command picks it (`nameserver`, `dataserver`,
# `origin`, or `server` for all-in-one). TypeScript runs through tsx at start, so the
# runtime stage needs the production dependencies and the sources, not a build output.
#
# BASE is any Debian-based Node 20 image with npm and a `node` user. Where Docker Hub cannot
# be reached, deploy/build-base.sh makes one from Debian's and the npm registry's packages
# (ugcfs-node:20-bookworm) and deploy/build-images.sh passes it here:
#   docker build --build-arg BASE=ugcfs-node:20-bookworm -t ugcfs:local .
ARG BASE=node:20-bookworm-slim

# --- dependencies: production only (tsx is a runtime dependency, so --omit=dev is enough).
# The native packages ship prebuilt binaries for every platform; only this one's stay.
FROM ${BASE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force \
 && find node_modules -path '*/prebuilds/*' -prune -type d ! -name "linux-$(node -p process.arch)" -exec rm -rf {} +

# --- runtime: sources + production node_modules, unprivileged
FROM ${BASE} AS runtime
ENV NODE_ENV=production \
    UGCFS_LOG_LEVEL=info
WORKDIR /app
COPY --from=deps --chown=root:root /app/node_modules ./node_modules
COPY package.json package-lock.json tsconfig.json ./
COPY bin ./bin
COPY cli ./cli
COPY src ./src
COPY origin ./origin
COPY nameserver ./nameserver
COPY dataserver ./dataserver
# State lives in volumes owned by the unprivileged `node` user of the base image; the code
# stays root-owned, so a compromised server cannot rewrite itself.
RUN mkdir -p /var/lib/ugcfs /var/cache/ugcfs && chown node:node /var/lib/ugcfs /var/cache/ugcfs
USER node
VOLUME ["/var/lib/ugcfs", "/var/cache/ugcfs"]
EXPOSE 7000 7001 8080
# Every role answers /healthz on its own port; UGCFS_HEALTH_PORT tells the check which one.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.UGCFS_HEALTH_PORT||'8080')+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
# SIGTERM reaches node directly (exec form, no shell; the bin's shebang runs env, which execs
# node with the flags it declares): graceful shutdown, exit 0.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/app/bin/ugcfs.mjs"]
CMD ["server", "--host", "0.0.0.0", "--data", "/var/lib/ugcfs"]
