// A touch screen at a fixed point (or a phone that scanned its QR marker): "you are here",
// search departments and amenities, the route, and a QR code that carries the route to a phone.
'use strict';
(() => {
  const { t, el, $, api } = CF;
  CF.words({
    title: '院内导航', large_text: '大字', you_are_here: '您在这里', search: '搜索', search_placeholder: '搜索科室、诊室、设施',
    no_results: '没有找到，请换个词试试，或询问服务台。', qr_help: '用手机扫码，把路线带在身上。', back: '返回搜索',
    unknown_marker: '这个位置码无效，请到服务台询问。', route_to: '前往 {place}', route_summary: '约 {m} 米，步行约 {min} 分钟',
    walk: '{min} 分钟', q_pharmacy: '药房', q_toilet: '卫生间', q_lab: '检验科', q_cashier: '收费', q_water: '饮水',
  }, {
    title: 'Wayfinding', large_text: 'Large text', you_are_here: 'You are here', search: 'Search', search_placeholder: 'Search departments, rooms, facilities',
    no_results: 'Nothing found. Try another word, or ask at the service desk.', qr_help: 'Scan with your phone to take the route with you.', back: 'Back to search',
    unknown_marker: 'This location code is not valid. Please ask at the service desk.', route_to: 'To {place}', route_summary: 'About {m} m, {min} min walk',
    walk: '{min} min', q_pharmacy: 'Pharmacy', q_toilet: 'Toilets', q_lab: 'Laboratory', q_cashier: 'Payment', q_water: 'Water',
  });
  const marker = decodeURIComponent(location.pathname.split('/').filter(Boolean)[1] || '');
  const from = `marker:${marker}`;
  // Quick buttons: the words searched (or the amenity kind asked for).
  const quick = [['q_pharmacy', { q: 'pharmacy' }], ['q_toilet', { kind: 'toilet' }], ['q_lab', { q: 'lab' }], ['q_cashier', { q: 'cashier' }], ['q_water', { kind: 'water' }]];
  let idle = null, shownTo = CF.params.get('to') || '';

  async function locate() {
    const r = await api(`/locate?${new URLSearchParams({ marker, lang: CF.lang })}`);
    if (!r.ok) {
      $('#problem').textContent = r.status === 404 ? t('unknown_marker') : r.error.message;
      $('#problem').classList.remove('hidden'); $('#find').classList.add('hidden');
      return null;
    }
    const p = r.data;
    $('#here').textContent = `${p.building_name} ${p.floor} · ${p.name}`;
    // A phone that scanned this marker remembers where it is, for the patient page's routes.
    localStorage.setItem('cf.here', from);
    $('#here-map').replaceChildren(el('figure', { class: 'level-map' },
      el('img', { src: `/api/v1/maps/${encodeURIComponent(p.venue)}/levels/${encodeURIComponent(p.level)}.svg`, alt: p.level_name }),
      el('figcaption', { text: p.level_name })));
    return p;
  }

  async function search(params) {
    const q = new URLSearchParams({ near: from, lang: CF.lang, limit: '12', ...params });
    const r = await api(`/pois?${q}`);
    const list = $('#results'); list.textContent = '';
    const found = r.ok ? r.data.pois : [];
    $('#no-results').classList.toggle('hidden', found.length > 0);
    for (const p of found) {
      list.append(el('li', {}, el('button', { type: 'button', 'data-place': p.id, onclick: () => showRoute(p.id) },
        el('span', {}, el('b', { text: p.name }), ' ', el('span', { class: 'muted', text: `${p.floor}` })),
        el('span', { class: 'muted', text: t('walk', { min: CF.minutes(p.duration_s) }) }))));
    }
  }

  async function showRoute(place) {
    const to = `place:${place}`;
    const r = await api(`/route?${new URLSearchParams({ from, to, lang: CF.lang })}`);
    if (!r.ok) { $('#problem').textContent = r.error.message; $('#problem').classList.remove('hidden'); return; }
    shownTo = place;
    $('#problem').classList.add('hidden');
    const route = r.data;
    $('#route-title').textContent = t('route_to', { place: route.to.name });
    $('#route-summary').textContent = t('route_summary', { m: Math.round(route.distance_m), min: CF.minutes(route.duration_s) });
    $('#steps').replaceChildren(...route.steps.map(s => el('li', { text: s.text })));
    $('#maps').replaceChildren(...CF.routeMaps(route, from, to));
    // The QR opens this same route on the patient's phone.
    const link = `${location.origin}/kiosk/${encodeURIComponent(marker)}?${new URLSearchParams({ to: place, lang: CF.lang })}`;
    $('#qr').src = `/api/v1/qr?${new URLSearchParams({ text: link })}`;
    $('#qr').dataset.link = link;
    $('#route').classList.remove('hidden'); $('#find').classList.add('hidden'); $('#here-map').classList.add('hidden');
    window.scrollTo(0, 0);
  }

  function back() {
    shownTo = '';
    $('#route').classList.add('hidden'); $('#find').classList.remove('hidden'); $('#here-map').classList.remove('hidden');
  }

  // A kiosk goes back to its start screen after a minute untouched (not a phone that came by QR).
  function touch() {
    if (CF.params.get('to')) return;
    clearTimeout(idle);
    idle = setTimeout(() => { back(); $('#search').value = ''; $('#results').textContent = ''; $('#no-results').classList.add('hidden'); }, 60000);
  }

  document.addEventListener('DOMContentLoaded', async () => {
    CF.largeText($('#large'));
    CF.applyStatic();
    const qbox = $('#quick');
    for (const [key, params] of quick) qbox.append(el('button', { type: 'button', 'data-t': key, onclick: () => search(params) }));
    CF.applyStatic();
    CF.langButton($('#lang'));
    $('#search-form').addEventListener('submit', ev => { ev.preventDefault(); const q = $('#search').value.trim(); if (q) search({ q }); });
    $('#back').addEventListener('click', back);
    CF.onLang(async () => { await locate(); if (shownTo) showRoute(shownTo); });
    ['click', 'keydown', 'touchstart'].forEach(e => document.addEventListener(e, touch, { passive: true }));
    const here = await locate();
    if (here && shownTo) showRoute(shownTo);
    touch();
  });
})();
