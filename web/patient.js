// The patient's phone, opened from the link or QR on the ticket: /t/{ticket}?token=…
// Number, position, ETA and status live over /ws/tickets/{id}; a called alert with sound and
// vibration; the route to the room on the floor map; the next stop once orders exist.
'use strict';
(() => {
  const { t, el, $, api } = CF;
  CF.words({
    title: '我的排队', large_text: '大字', retry: '重试', home: '返回首页', your_turn: '轮到您了',
    ahead: '前面人数', eta_min: '预计等待(分钟)', next_stop: '下一站', route: '怎么走',
    bad_link: '链接无效或已过期', bad_link_text: '请重新扫描号票上的二维码，或到自助机、服务台重新查询。',
    no_ticket: '找不到这张号票', no_ticket_text: '号票可能已作废。请到自助机或服务台查询。',
    offline: '暂时连不上医院服务器', offline_text: '请检查手机网络，稍后会自动重试。',
    st_booked: '已预约，请到分诊台报到', st_waiting: '候诊中', st_called: '请到 {room} 就诊', st_in_service: '就诊中',
    st_completed: '本次就诊已完成', st_missed: '已过号，请到分诊台重新报到', st_cancelled: '号票已取消', st_transferred: '已转诊',
    go_to: '请到 {room}', route_to: '前往 {place}', route_summary: '约 {m} 米，步行约 {min} 分钟', you_are_next: '下一位就是您，请到诊室门口等候',
    next_text: '{name}：预计等候 {wait} 分钟，步行 {walk} 分钟',
    you_are_here: '您的位置', here_text: '您在 {floor}（约 {m} 米内）', off_route: '，已偏离路线，已为您重新规划',
    leave_now: '现在出发', leave_text: '步行约 {walk} 分钟，约 {eta} 分钟后叫到您',
  }, {
    title: 'My queue', large_text: 'Large text', retry: 'Retry', home: 'Home', your_turn: 'It is your turn',
    ahead: 'Ahead of you', eta_min: 'Expected wait (min)', next_stop: 'Next stop', route: 'How to get there',
    bad_link: 'This link is not valid or has expired', bad_link_text: 'Scan the QR code on your ticket again, or ask at a kiosk or the service desk.',
    no_ticket: 'Ticket not found', no_ticket_text: 'The ticket may have been cancelled. Please ask at a kiosk or the service desk.',
    offline: 'Cannot reach the hospital server', offline_text: 'Please check your network; we will retry automatically.',
    st_booked: 'Booked: please check in at the triage desk', st_waiting: 'Waiting', st_called: 'Please go to {room}', st_in_service: 'In consultation',
    st_completed: 'Your visit here is complete', st_missed: 'Missed: please check in again at the triage desk', st_cancelled: 'Ticket cancelled', st_transferred: 'Transferred',
    go_to: 'Please go to {room}', route_to: 'To {place}', route_summary: 'About {m} m, {min} min walk', you_are_next: 'You are next: please wait at the door',
    next_text: '{name}: about {wait} min wait, {walk} min walk',
    you_are_here: 'You are here', here_text: 'You are on {floor} (within about {m} m)', off_route: '; you left the route, so it was planned again',
    leave_now: 'Time to go', leave_text: 'About {walk} min walk; you will be called in about {eta} min',
  });
  const ticketId = decodeURIComponent(location.pathname.split('/').filter(Boolean)[1] || '');
  const token = CF.params.get('token') || '';
  let ticket = null, lastSeq = null, socket = null, plan = null, routeKey = '', snapshotSeen = false, located = null, offRoute = false, leaveRoute = null;

  function problem(title, text) {
    $('#problem-title').textContent = t(title); $('#problem-text').textContent = t(text);
    $('#problem').classList.remove('hidden');
    for (const s of ['#ticket', '#route', '#next-stop', '#called']) $(s).classList.add('hidden');
  }

  function roomName() { return CF.pick(ticket.room_name, ticket.room_name_en) || ticket.room || ''; }

  function render() {
    if (!ticket) return;
    $('#problem').classList.add('hidden');
    $('#ticket').classList.remove('hidden');
    $('#queue-name').textContent = CF.pick(ticket.queue_name, ticket.queue_name_en);
    $('#number').textContent = ticket.number;
    $('#status').textContent = t('st_' + ticket.status, { room: roomName() });
    const waiting = ticket.status === 'waiting' || ticket.status === 'booked';
    $('#position').textContent = waiting && ticket.position !== null ? ticket.position : '—';
    $('#eta').textContent = waiting && ticket.eta_secs !== null && ticket.eta_secs !== undefined ? CF.minutes(ticket.eta_secs) : '—';
    // Why this place in line ("2 priority patients ahead; you are next after them").
    const note = waiting && ticket.position_note;
    $('#position-note').textContent = note ? CF.pick(note.zh, note.en) : '';
    if (ticket.status !== 'waiting') { leaveRoute = null; $('#leave').classList.add('hidden'); }
    const called = ticket.status === 'called';
    $('#called').classList.toggle('hidden', !called);
    if (called) $('#called-text').textContent = t('go_to', { room: roomName() });
    renderNext();
    updateRoute();
  }

  // ---- the called alert: sound and vibration on a live call ----
  function alertCall() {
    try { navigator.vibrate && navigator.vibrate([400, 200, 400, 200, 400]); } catch (_) {}
    try {
      const ctx = new (window.AudioContext || window.webkitAudioContext)();
      [0, 0.45, 0.9].forEach(at => {
        const o = ctx.createOscillator(), g = ctx.createGain();
        o.frequency.value = 880; o.connect(g); g.connect(ctx.destination);
        g.gain.setValueAtTime(0.25, ctx.currentTime + at); g.gain.setValueAtTime(0, ctx.currentTime + at + 0.3);
        o.start(ctx.currentTime + at); o.stop(ctx.currentTime + at + 0.32);
      });
    } catch (_) {}
  }

  // ---- where to go ----
  function here() {
    return CF.params.get('from') || localStorage.getItem('cf.here') || '';
  }
  async function startPoint() {
    if (here()) return here();
    const m = await api('/maps');
    const v = m.ok && m.data.venues[0];
    return v && v.entrances.length ? `node:${v.entrances[0]}` : '';
  }
  function destination() {
    if (!ticket) return '';
    const active = ['booked', 'waiting', 'called', 'in_service', 'missed'].includes(ticket.status);
    if (active) return ticket.room && ticket.status !== 'waiting' ? `room:${ticket.room}` : `department:${ticket.department}`;
    return '';
  }
  async function updateRoute() {
    // "Leave now" brought the way from where the patient is: keep it while they wait.
    if (leaveRoute && ticket && ticket.status === 'waiting') {
      if (routeKey !== 'leave') { routeKey = 'leave'; drawRoute(leaveRoute, leaveRoute.from.ref, leaveRoute.to.ref, leaveRoute.to.name); }
      return;
    }
    const to = destination();
    const key = `${to}|${CF.lang}`;
    if (!to) {
      // The visit here is over: show the way to the next stop, if there is one.
      if (plan && plan.next && plan.next.route) return drawRoute(plan.next.route, plan.next.route.from.ref, plan.next.route.to.ref, plan.next.name);
      $('#route').classList.add('hidden'); routeKey = ''; return;
    }
    if (key === routeKey) return;
    routeKey = key;
    const from = await startPoint();
    if (!from) return;
    const r = await api(`/route?${new URLSearchParams({ from, to, lang: CF.lang, profile: CF.params.get('profile') || 'default' })}`);
    if (!r.ok) { routeKey = ''; return; }
    drawRoute(r.data, from, to, r.data.to.name);
  }
  function drawRoute(route, from, to, name) {
    $('#route').classList.remove('hidden');
    $('#route-title').textContent = t('route_to', { place: name || '' });
    $('#route-summary').textContent = t('route_summary', { m: Math.round(route.distance_m), min: CF.minutes(route.duration_s) });
    $('#steps').replaceChildren(...route.steps.map(s => el('li', { text: typeof s === 'string' ? s : s.text })));
    $('#maps').replaceChildren(...CF.routeMaps(route, from, to));
    showHere();
  }

  // ---- where the patient is (BLE, kiosk and QR scans): a dot on the level drawing ----
  function showHere() {
    const d = located && located.drawing;
    if (!d) return;
    // On the route's own drawing of that level when one is shown, else on a plain one.
    let fig = [...document.querySelectorAll('#maps figure.level-map')].find(f => f.dataset.level === d.level && !$('#route').classList.contains('hidden'));
    $('#here').classList.remove('hidden');
    if (!fig) {
      fig = $('#here-map figure');
      if (!fig || fig.dataset.level !== d.level) {
        fig = el('figure', { class: 'level-map', 'data-level': d.level },
          el('img', { src: `/api/v1/maps/${encodeURIComponent(d.venue)}/levels/${encodeURIComponent(d.level)}.svg`, alt: CF.pick(d.floor.zh, d.floor.en) }));
        $('#here-map').replaceChildren(fig);
      }
    } else {
      $('#here-map').replaceChildren();
    }
    for (const old of document.querySelectorAll('.here-dot')) if (old.parentElement !== fig) old.remove();
    let dot = fig.querySelector('.here-dot');
    if (!dot) { dot = el('span', { class: 'here-dot', role: 'img', 'aria-label': t('you_are_here') }); fig.append(dot); }
    Object.assign(dot.style, { left: `${(d.u * 100).toFixed(2)}%`, top: `${(d.v * 100).toFixed(2)}%` });
    const spread = Math.max(1, Math.round(located.location.spread_m || 0));
    $('#here-text').textContent = t('here_text', { floor: CF.pick(d.floor.zh, d.floor.en), m: spread }) + (offRoute ? t('off_route') : '');
  }

  // ---- next stop (orders from the HIS) ----
  function renderNext() {
    const n = plan && !plan.done && plan.next;
    $('#next-stop').classList.toggle('hidden', !n);
    if (!n) return;
    $('#next-text').textContent = t('next_text', { name: n.name, wait: CF.minutes(n.expected_wait_s), walk: CF.minutes(n.walk_s) });
    $('#next-reason').textContent = n.reason || '';
  }
  async function loadNext() {
    if (!ticket) return;
    const at = here();
    const q = new URLSearchParams({ lang: CF.lang }); if (at) q.set('at', at);
    const r = await api(`/patients/${encodeURIComponent(ticket.patient_id)}/next?${q}`, { token });
    plan = r.ok ? r.data : null;
    render();
  }

  async function load() {
    const r = await api(`/tickets/${encodeURIComponent(ticketId)}`, { token });
    if (!r.ok) {
      if (r.status === 401 || r.status === 403) return problem('bad_link', 'bad_link_text');
      if (r.status === 404) return problem('no_ticket', 'no_ticket_text');
      problem('offline', 'offline_text'); setTimeout(load, 5000); return;
    }
    ticket = r.data; render(); loadNext();
    if (!socket) connect();
  }

  function connect() {
    socket = CF.live(() => `/ws/tickets/${encodeURIComponent(ticketId)}?token=${encodeURIComponent(token)}` + (lastSeq !== null ? `&since=${lastSeq}` : ''), {
      onStatus: up => { $('#lost').classList.toggle('hidden', up); document.body.dataset.live = up ? '1' : '0'; },
      onMessage: m => {
        if (m.seq !== undefined && m.type !== 'position') lastSeq = Math.max(lastSeq || 0, m.seq);
        if (m.type === 'snapshot') { ticket = m.ticket; snapshotSeen = true; render(); }
        else if (m.type === 'position') { if (ticket) { ticket.position = m.position; ticket.eta_secs = m.eta_secs; ticket.position_note = m.note; render(); } }
        else if (m.type === 'next_stop') { plan = m.plan || plan; if (m.done) plan = { done: true }; offRoute = m.why === 'off_route'; render(); }
        else if (m.type === 'location') { located = m; showHere(); }
        else if (m.type === 'leave_now') {
          $('#leave').classList.remove('hidden');
          $('#leave-text').textContent = t('leave_text', { walk: CF.minutes(m.walk_s), eta: CF.minutes(m.eta_secs) });
          try { navigator.vibrate && navigator.vibrate([300, 150, 300]); } catch (_) {}
          leaveRoute = m.route; routeKey = ''; updateRoute();
        }
        else if (m.type === 'event') {
          if ((m.event === 'called' || m.event === 'recalled') && snapshotSeen) alertCall();
          if (m.event === 'you_are_next') { $('#status').textContent = t('you_are_next'); }
          // The event says what happened; the ticket view says where it stands now.
          api(`/tickets/${encodeURIComponent(ticketId)}`, { token }).then(r => {
            if (r.ok) { ticket = r.data; render(); if (m.event === 'completed') loadNext(); }
          });
        }
      },
    });
  }

  document.addEventListener('DOMContentLoaded', () => {
    CF.largeText($('#large'));
    CF.applyStatic();
    CF.langButton($('#lang'));
    $('#retry').addEventListener('click', load);
    CF.onLang(() => { render(); loadNext(); });
    if (!token) return problem('bad_link', 'bad_link_text');
    load();
  });
})();
