// The proxy's handling of the hub's space cookie and of credentials (njs, loaded by
// deploy/nginx/nginx.conf.template). Plain nginx maps cannot do either safely:
//
// * A client may send the space cookie any number of times (several Cookie headers, several
//   pairs in one): a regex map removes a fixed number of copies, so the rest would reach the
//   app. appCookie() drops every copy, whatever its spelling or prefix.
// * On https only the "__Host-" cookie counts (SPACE_COOKIE_NAME): a sibling space can set a
//   plain "demohub_space" cookie for the whole apps domain (cookie tossing), never a
//   "__Host-" one (the browser keeps that one to the host that set it).
//
// (The access check's cache key, a hash of the credentials, is set_sha1 of set-misc in
// runner/proxy.py: C, where a per-request njs call cost private spaces a third of their
// proxy throughput.)
// $http_cookie joins every Cookie header of the request with "; ".

import fs from 'fs';

// Every name under which a browser or a client could hand the hub's cookie to an app.
var HUB_COOKIES = ['demohub_space', '__host-demohub_space', '__secure-demohub_space'];

function cookieName(pair) {
    var eq = pair.indexOf('=');
    var name = (eq < 0 ? pair : pair.slice(0, eq)).trim();
    try {
        name = decodeURIComponent(name);   // some cookie parsers decode names (demohub%5Fspace)
    } catch (e) {
        // not valid percent-encoding: keep the raw name
    }
    return name.toLowerCase();
}

// The value of the hub's space cookie for the access check: only the exact name the proxy
// is configured for ("__Host-demohub_space" on https), the first copy.
function spaceCookie(r) {
    var wanted = r.variables.demohub_space_cookie_name;
    var pairs = (r.variables.http_cookie || '').split(';');
    for (var i = 0; i < pairs.length; i++) {
        var eq = pairs[i].indexOf('=');
        if (eq > 0 && pairs[i].slice(0, eq).trim() === wanted) {
            return pairs[i].slice(eq + 1).trim();
        }
    }
    return '';
}

// The Cookie header the app gets: the request's cookies without any copy of the hub's.
function appCookie(r) {
    var all = r.variables.http_cookie || '';
    var pairs = all.split(';');
    var kept = pairs.filter(function (pair) {
        return HUB_COOKIES.indexOf(cookieName(pair)) < 0;
    });
    if (kept.length === pairs.length) {
        return all;
    }
    return kept.map(function (pair) { return pair.trim(); })
               .filter(function (pair) { return pair !== ''; }).join('; ');
}

// The access epoch of a private space: the content of its private flag file
// ($demohub_private_file, written by runner/proxy.py), part of the access-cache key, so a
// bumped epoch is a new key (an empty cache) for the very next request. Read on the access
// check of private spaces only (a small file, in the page cache).
function accessEpoch(r) {
    try {
        return fs.readFileSync(r.variables.demohub_private_file, 'utf8').trim();
    } catch (e) {
        return 'none';
    }
}

export default {spaceCookie, appCookie, accessEpoch};
