// clinicflow pages: shared helpers (i18n, API calls, reconnecting WebSocket, DOM).
// No framework and no CDN: hospital intranets are closed, everything is served by the server.
'use strict';
const CF = (() => {
  const params = new URLSearchParams(location.search);
  const dict = { zh: {}, en: {} };
  let lang = params.get('lang') || localStorage.getItem('cf.lang') || 'zh';
  if (lang !== 'zh' && lang !== 'en') lang = 'zh';
  const listeners = [];

  function t(key, vars) {
    let s = dict[lang][key] ?? dict.zh[key] ?? key;
    if (vars) for (const k of Object.keys(vars)) s = s.split('{' + k + '}').join(String(vars[k]));
    return s;
  }
  function words(zh, en) { Object.assign(dict.zh, zh); Object.assign(dict.en, en); }
  function applyStatic(root = document) {
    document.documentElement.lang = lang === 'zh' ? 'zh-CN' : 'en';
    root.querySelectorAll('[data-t]').forEach(e => { e.textContent = t(e.dataset.t); });
    root.querySelectorAll('[data-t-placeholder]').forEach(e => { e.placeholder = t(e.dataset.tPlaceholder); });
    root.querySelectorAll('[data-t-title]').forEach(e => { e.title = t(e.dataset.tTitle); });
  }
  function setLang(l) {
    lang = l;
    localStorage.setItem('cf.lang', l);
    applyStatic();
    listeners.forEach(f => f(l));
  }
  function onLang(f) { listeners.push(f); }
  // A name in the page's language, from a {zh, en} pair or two fields.
  function pick(zh, en) { return lang === 'en' && en ? en : (zh || en || ''); }

  async function api(path, { method = 'GET', token, body } = {}) {
    const headers = { Accept: 'application/json' };
    if (token) headers.Authorization = 'Bearer ' + token;
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    let r;
    try {
      r = await fetch('/api/v1' + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), cache: 'no-store' });
    } catch (e) {
      return { ok: false, status: 0, error: { code: 'network', message: t('network_error') } };
    }
    let data = null;
    if (r.status !== 204) { try { data = await r.json(); } catch (_) { data = null; } }
    if (r.ok) return { ok: true, status: r.status, data };
    return { ok: false, status: r.status, error: (data && data.error) || { code: 'http_' + r.status, message: r.statusText } };
  }

  // A WebSocket that reconnects by itself (backoff 0.5 s doubling to 10 s). `path` may be a
  // function, so a reconnect can resume from the last sequence number seen.
  function live(path, { onMessage, onStatus }) {
    let ws = null, delay = 500, stopped = false, timer = null;
    function connect() {
      const p = typeof path === 'function' ? path() : path;
      ws = new WebSocket((location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + p);
      ws.onopen = () => { delay = 500; onStatus && onStatus(true); };
      ws.onmessage = ev => {
        let m;
        try { m = JSON.parse(ev.data); } catch (_) { return; }
        onMessage(m);
      };
      ws.onclose = () => {
        onStatus && onStatus(false);
        if (stopped) return;
        timer = setTimeout(connect, delay);
        delay = Math.min(delay * 2, 10000);
      };
    }
    connect();
    return {
      stop() { stopped = true; clearTimeout(timer); ws && ws.close(); },
      // Send a JSON message if connected (delivery acks); dropped otherwise.
      send(m) { if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(m)); },
    };
  }

  function el(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === 'class') e.className = v;
      else if (k === 'text') e.textContent = v;
      // CSSOM, not a style attribute: the pages' CSP allows no inline styles.
      else if (k === 'style') Object.assign(e.style, v);
      else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v === true ? '' : v);
    }
    for (const c of kids.flat()) if (c !== null && c !== undefined && c !== false) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    return e;
  }
  const $ = sel => document.querySelector(sel);
  function minutes(secs) { return Math.max(1, Math.round((secs || 0) / 60)); }

  // Level maps of a route, one image per level it crosses, with the route drawn.
  function routeMaps(route, from, to) {
    // A route from the live position starts at the node nearest to it.
    if (from === 'position' && route.path && route.path.length) from = `node:${route.path[0].node}`;
    const q = new URLSearchParams({ from, to, profile: route.profile || 'default' });
    return route.levels.map(level => el('figure', { class: 'level-map', 'data-level': level },
      el('img', { src: `/api/v1/maps/${encodeURIComponent(route.venue)}/levels/${encodeURIComponent(level)}.svg?${q}`, alt: level })));
  }

  // The zh/en switch, and the large-text switch for elderly readers (both remembered).
  function langButton(b) { b.addEventListener('click', () => setLang(lang === 'zh' ? 'en' : 'zh')); }
  function largeText(b) {
    document.body.classList.toggle('large', localStorage.getItem('cf.large') === '1');
    b.addEventListener('click', () => {
      const on = !document.body.classList.contains('large');
      document.body.classList.toggle('large', on);
      localStorage.setItem('cf.large', on ? '1' : '0');
    });
  }

  words({
    network_error: '网络连接失败，请稍后重试',
    lang_toggle: 'English',
    connection_lost: '连接中断，正在重新连接…',
  }, {
    network_error: 'Network error, please try again',
    lang_toggle: '中文',
    connection_lost: 'Connection lost, reconnecting…',
  });

  return { t, words, pick, applyStatic, setLang, onLang, langButton, largeText, get lang() { return lang; }, api, live, el, $, minutes, params, routeMaps };
})();
