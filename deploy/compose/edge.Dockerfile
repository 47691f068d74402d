# The CDN edge of docker-compose.yml: Debian's nginx (the one the edge tests run against)
# with the cache-purge module, serving deploy/nginx-edge.conf (mounted by compose at
# /etc/nginx/conf.d/default.conf). Built from a Debian base rather than Docker Hub's nginx
# image so that it builds where no image registry is reachable (deploy/build-images.sh
# passes BASE=ugcfs-debian:bookworm there) and ships the same modules as the hosts' nginx.
ARG BASE=debian:bookworm-slim
FROM ${BASE}
# The package's postinst would start nginx's init script: nothing runs services at build
# time. Only the edge's server answers port 80 (Debian's default site would catch every
# Host); logs go to the container's output (docker logs); the cache volume
# (proxy_cache_path) starts out owned by nginx's worker user.
RUN printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d \
 && apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends nginx libnginx-mod-http-cache-purge \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/cache/apt/archives/*.deb /usr/sbin/policy-rc.d \
 && rm -f /etc/nginx/sites-enabled/default \
 && ln -sf /dev/stdout /var/log/nginx/access.log && ln -sf /dev/stderr /var/log/nginx/error.log \
 && install -d -o www-data -g www-data /var/cache/nginx/ugcfs
VOLUME ["/var/cache/nginx/ugcfs"]
EXPOSE 80
STOPSIGNAL SIGQUIT
ENTRYPOINT ["/usr/sbin/nginx", "-g", "daemon off;"]
