/* DataLook browser SDK: pageviews, marked clicks, successes. No cookies, no storage, unless
   the site chose persistent visitor ids (data-persistent, which needs consent in the EU). */
(function (w, d) {
  "use strict";
  var me = d.currentScript;
  if (!me || w.datalook && w.datalook.v) { return; }
  var site = me.getAttribute("data-site");
  var api = me.getAttribute("data-api") || new URL(me.src).origin + "/collect";
  var url = api + "?site=" + encodeURIComponent(site);
  // data-user-id: the page's logged-in user (rendered by the site), sent with every event.
  var n = navigator, h = w.history, userId = me.getAttribute("data-user-id") || null, last = null;
  var off = me.hasAttribute("data-respect-dnt") &&
    (n.doNotTrack === "1" || w.doNotTrack === "1" || n.globalPrivacyControl === true);

  function rid(n) {
    var a = new Uint8Array(n || 12), s = "";
    w.crypto.getRandomValues(a);
    for (var i = 0; i < a.length; i++) { s += (a[i] + 256).toString(16).slice(1); }
    return s;
  }

  // Persistent mode: one random id per browser, in a cookie on the registrable domain (the
  // widest domain that takes it, so www. and app. share it), else in localStorage.
  var pid = null, ls;
  if (me.hasAttribute("data-persistent")) {
    try { ls = w.localStorage; } catch (x) {}
    var m = /(?:^|; )dl_id=([0-9a-f]{32})/.exec(d.cookie);
    pid = m ? m[1] : ls && /^[0-9a-f]{32}$/.test(ls.dl_id) ? ls.dl_id : rid(16);
    var parts = location.hostname.split(".");
    for (var i = parts.length - 2; i >= 0; i--) {
      d.cookie = "dl_id=" + pid + ";path=/;max-age=34560000;samesite=lax;domain=" + parts.slice(i).join(".");
      if (d.cookie.indexOf("dl_id=" + pid) >= 0) { break; }
    }
    if (ls) { ls.dl_id = pid; }
  }

  // One event: sendBeacon (survives leaving the page), else fetch with keepalive.
  function send(e) {
    if (off) { return; }
    e.page_path = location.pathname;
    e.event_id = rid();
    if (userId !== null && e.success_user_id == null) { e.success_user_id = userId; }
    if (pid) { e.persistent_id = pid; }
    var body = JSON.stringify(e);
    if (n.sendBeacon && n.sendBeacon(url, body)) { return; }
    fetch(url, {
      method: "POST", body: body, keepalive: true, credentials: "omit",
      headers: { "Content-Type": "text/plain" }
    }).catch(function () {});
  }

  // Where the visit came from, read once on landing and sent with each pageview: another
  // site's referrer (origin and path, never its query), the campaign parameters, the names
  // (not values) of ad click ids, the screen width. Values are cut to what /collect takes.
  var p = new URLSearchParams(location.search), from = { screen_width: screen.width, utm: {} };
  try {
    var r = new URL(d.referrer);
    if (/^https?:$/.test(r.protocol) && r.origin !== location.origin) {
      from.referrer = (r.origin + r.pathname).slice(0, 2048);
    }
  } catch (x) {}
  ["source", "medium", "campaign", "term", "content"].forEach(function (k) {
    var v = p.get("utm_" + k) || k === "source" && (p.get("ref") || p.get("source") || p.get("via"));
    if (v) {
      from.utm[k] = v.replace(/[\x00-\x1f\x7f-\x9f]/g, "").slice(0, 100).replace(/[\ud800-\udbff]$/, "");
    }
  });
  from.click_ids = "gclid gbraid wbraid msclkid fbclid ttclid li_fat_id twclid dclid".split(" ")
    .filter(function (k) { return p.has(k); });

  // A pageview per navigation: the path changed since the last one we sent.
  function pageview(force) {
    if (!force && location.pathname === last) { return; }
    last = location.pathname;
    send(Object.assign({ event_name: "pageview" }, from));
  }

  ["pushState", "replaceState"].forEach(function (m) {
    var orig = h[m];
    h[m] = function () {
      var r = orig.apply(this, arguments);
      pageview();
      return r;
    };
  });
  w.addEventListener("popstate", function () { pageview(); });
  // A page restored from the back/forward cache is a new visit of it.
  w.addEventListener("pageshow", function (e) { if (e.persisted) { pageview(true); } });

  d.addEventListener("click", function (e) {
    var t = e.target, el = t && t.closest && t.closest("[data-datalook-click]");
    if (el) {
      send({ event_name: "click", name: el.getAttribute("data-datalook-click") });
      return;
    }
    var a = me.hasAttribute("data-outbound-links") && t && t.closest && t.closest("a[href]");
    if (a && a.host && a.host !== location.host) {
      send({ event_name: "click", name: "outbound-link", properties: { url: a.origin + a.pathname } });
    }
  }, true);

  var sdk = {
    v: 1,
    success: function (name, o) {
      o = o || {};
      if (o.userId != null) { userId = String(o.userId); }
      send({ event_name: "success", name: name, success_value: o.value,
        properties: o.properties });
    },
    custom: function (name, props) {
      send({ event_name: "custom", name: name, properties: props });
    },
    identify: function (id) {
      if (id == null) { return; }
      userId = String(id);
      send({ event_name: "custom", name: "identify" });
    }
  };
  // Calls made before the script ran: window.datalook.q = [["success", "signup"], ...].
  var q = w.datalook && w.datalook.q || [];
  w.datalook = sdk;
  pageview();
  for (var i = 0; i < q.length; i++) { sdk[q[i][0]].apply(sdk, [].slice.call(q[i], 1)); }
})(window, document);
