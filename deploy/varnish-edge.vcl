vcl 4.1;
# A Varnish CDN edge in front of a ugcfs origin, which the origin purges when a file is
# deleted (`ugcfs origin --purge-edges http://<this edge>:<port>`; docs/ORIGIN.md, "Edge purge").
# Needs Varnish 7 and vmod xkey (Debian: apt-get install varnish varnish-modules).
#
#   varnishd -a :6081 -f /etc/varnish/varnish-edge.vcl -s malloc,1G
#
# The origin files every answer under its file's keys (`Surrogate-Key: <fid>`, plus a
# legacy path's key when one was used); xkey indexes objects by them, and one request from
# the origin, `PURGE /` with `xkey-purge: <fid> <fid>...`, drops the original and every
# variant of those files, whatever URL (query, Taobao-style suffix, legacy path) cached them.
#
# Safe by default, as deploy/nginx-edge.conf: reads (GET, HEAD) and POST /upload pass,
# nothing else; the origins' peer routes, /metrics and /healthz are not served here.

import xkey;

# The origin. With several origins, put a director (vmod directors, `shard` by URL) here;
# any of them may send the purges.
backend default {
    .host = "127.0.0.1";
    .port = "8080";
    .connect_timeout = 2s;
    .first_byte_timeout = 65s;
    .between_bytes_timeout = 30s;
}

# Who may purge: the origins' addresses. Loopback only as shipped; add each origin's address
# (not a whole private range: behind a NAT or a container port mapping, clients may arrive
# from a private address too).
acl ugcfs_purgers {
    "127.0.0.1";
    "::1";
}

sub vcl_recv {
    if (req.method == "PURGE") {
        if (client.ip !~ ugcfs_purgers) {
            return (synth(403, "Forbidden"));
        }
        # With `ugcfs origin --purge-token T`, also require it (the same T here):
        # if (req.http.x-purge-token != "T") { return (synth(403, "Forbidden")); }
        if (req.http.xkey-purge) {
            set req.http.xkey-purged = xkey.purge(req.http.xkey-purge);
            return (synth(200, "Purged"));
        }
        # A URL alone: the object cached for it (this Host).
        return (purge);
    }
    if (req.url ~ "^/_internal(/|$)" || req.url ~ "^/(metrics|healthz)/?(\?.*)?$") {
        return (synth(404, "Not Found"));
    }
    if (req.method == "POST" && req.url == "/upload") {
        return (pass);
    }
    if (req.method != "GET" && req.method != "HEAD") {
        return (synth(405, "Method Not Allowed"));
    }
    # Files are public and the same for everyone: nothing of the client's varies them.
    unset req.http.Cookie;
    unset req.http.Authorization;
    return (hash);
}

sub vcl_backend_response {
    # xkey indexes the object under the keys of its `xkey` header.
    if (beresp.http.Surrogate-Key) {
        set beresp.http.xkey = beresp.http.Surrogate-Key;
    }
    # The origin says immutable for a year, which browsers keep. The edge keeps an object an
    # hour at most and then revalidates it with its ETag (a cheap 304 while the file exists):
    # a purge that never arrived (the origin's queue overflowed, a gap in its delete feed)
    # costs an hour at most. Errors keep the origin's own short max-age.
    if (beresp.ttl > 1h) {
        set beresp.ttl = 1h;
    }
    set beresp.keep = 7d;
}

sub vcl_deliver {
    unset resp.http.xkey;
    if (obj.hits > 0) {
        set resp.http.X-Edge-Cache = "HIT";
    } else {
        set resp.http.X-Edge-Cache = "MISS";
    }
}

sub vcl_synth {
    if (req.method == "PURGE") {
        # The origin counts a purge done only on this answer header (src/clients/edge-client.ts).
        set resp.http.x-edge-purge = "xkey";
        if (req.http.xkey-purged) {
            set resp.http.xkey-purged = req.http.xkey-purged;
        }
    }
    if (resp.status == 405) {
        set resp.http.Allow = "GET, HEAD";
    }
}
