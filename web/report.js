// The day's numbers (GET /api/v1/reports/day): volume by hour, waits per queue, and tables per
// queue, room and doctor, with a CSV download. Charts are plain SVG drawn here.
'use strict';
(() => {
  const { t, el, $, api } = CF;
  CF.words({
    title: '当日统计', csv: '下载 CSV', sign_in: '登录', token: '令牌', bad_token: '令牌无效', by_hour: '每小时报到与叫号',
    waits: '各队列候诊时间（分钟）', queues: '队列', rooms: '诊室', doctors: '医生', arrivals: '报到', calls: '叫号',
    queue: '队列', issued: '取号', called: '已叫', completed: '完成', missed: '过号', cancelled: '取消', wait_mean: '平均候诊',
    wait_p90: '90% 候诊', walk_mean: '平均到诊', service_mean: '平均就诊', room: '诊室', busy: '接诊(分)', idle: '空闲(分)',
    doctor: '医生', nothing: '这一天没有记录', mean: '平均', p90: '90%',
  }, {
    title: "Today's numbers", csv: 'Download CSV', sign_in: 'Sign in', token: 'Token', bad_token: 'The token is not valid', by_hour: 'Check-ins and calls by hour',
    waits: 'Wait per queue (minutes)', queues: 'Queues', rooms: 'Rooms', doctors: 'Doctors', arrivals: 'check-ins', calls: 'calls',
    queue: 'Queue', issued: 'Issued', called: 'Called', completed: 'Done', missed: 'Missed', cancelled: 'Cancelled', wait_mean: 'Wait mean',
    wait_p90: 'Wait p90', walk_mean: 'Walk mean', service_mean: 'Service mean', room: 'Room', busy: 'Busy (min)', idle: 'Idle (min)',
    doctor: 'Doctor', nothing: 'Nothing recorded on this day', mean: 'mean', p90: 'p90',
  });
  const NS = 'http://www.w3.org/2000/svg';
  let token = sessionStorage.getItem('cf.staff') || '';
  let report = null;

  function svg(tag, attrs, ...kids) {
    const e = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    for (const c of kids) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    return e;
  }
  const fmt = x => (x === null || x === undefined) ? '—' : (Math.round(x * 10) / 10).toString();

  // Check-ins and calls per hour, all queues together: two bars per hour.
  function hoursChart(r) {
    const arrivals = Array(24).fill(0), calls = Array(24).fill(0);
    for (const q of r.queues) q.arrivals_by_hour.forEach((n, h) => { arrivals[h] += n; calls[h] += q.calls_by_hour[h]; });
    const used = [...Array(24).keys()].filter(h => arrivals[h] || calls[h]);
    const from = used.length ? Math.max(0, Math.min(...used) - 1) : 7, to = used.length ? Math.min(23, Math.max(...used) + 1) : 18;
    const hours = [...Array(to - from + 1).keys()].map(i => from + i);
    const max = Math.max(1, ...arrivals, ...calls), W = 36, H = 160;
    const g = svg('svg', { viewBox: `0 0 ${hours.length * W + 40} ${H + 40}`, class: 'bars', role: 'img', 'aria-label': t('by_hour') });
    hours.forEach((h, i) => {
      const x = 30 + i * W;
      for (const [k, v, fill] of [[0, arrivals[h], '#4c78a8'], [1, calls[h], '#f58518']]) {
        const bh = Math.round(v / max * H);
        g.append(svg('rect', { x: x + k * 14, y: 10 + H - bh, width: 12, height: bh, fill, 'data-hour': h, 'data-kind': k ? 'calls' : 'arrivals' }, svg('title', {}, `${h}:00 ${t(k ? 'calls' : 'arrivals')} ${v}`)));
      }
      g.append(svg('text', { x: x + 12, y: H + 28, 'font-size': 11, 'text-anchor': 'middle' }, `${h}`));
    });
    g.append(svg('text', { x: 30, y: H + 40, 'font-size': 11, fill: '#4c78a8' }, `■ ${t('arrivals')}`));
    g.append(svg('text', { x: 130, y: H + 40, 'font-size': 11, fill: '#f58518' }, `■ ${t('calls')}`));
    return g;
  }

  // Mean and p90 wait per queue: horizontal bars.
  function waitsChart(r) {
    const qs = r.queues.filter(q => q.wait.n > 0);
    const max = Math.max(1, ...qs.map(q => q.wait.p90 || 0)), W = 420, R = 26;
    const g = svg('svg', { viewBox: `0 0 ${W + 280} ${qs.length * R + 10}`, class: 'bars', role: 'img', 'aria-label': t('waits') });
    qs.forEach((q, i) => {
      const y = 5 + i * R;
      g.append(svg('text', { x: 0, y: y + 15, 'font-size': 12 }, q.name || q.queue));
      g.append(svg('rect', { x: 130, y: y + 2, width: Math.max(1, q.wait.p90 / max * W), height: 18, fill: '#c6dbef', 'data-queue': q.queue }));
      g.append(svg('rect', { x: 130, y: y + 6, width: Math.max(1, q.wait.mean / max * W), height: 10, fill: '#3182bd' }));
      g.append(svg('text', { x: 136 + W, y: y + 15, 'font-size': 11 }, `${t('mean')} ${fmt(q.wait.mean)} · ${t('p90')} ${fmt(q.wait.p90)}`));
    });
    return g;
  }

  function table(id, cols, rows) {
    const tb = $(id); tb.textContent = '';
    tb.append(el('thead', {}, el('tr', {}, cols.map(c => el('th', { text: t(c[0]) })))));
    tb.append(el('tbody', {}, rows.map(r => el('tr', {}, cols.map(c => el('td', { text: c[1](r) }))))));
  }

  function render() {
    if (!report) return;
    $('#hours').textContent = ''; $('#waits').textContent = '';
    if (!report.queues.length) { $('#hours').append(el('p', { class: 'muted', text: t('nothing') })); }
    else { $('#hours').append(hoursChart(report)); $('#waits').append(waitsChart(report)); }
    table('#queues', [['queue', q => q.name || q.queue], ['issued', q => q.issued], ['called', q => q.called], ['completed', q => q.completed],
      ['missed', q => q.missed], ['cancelled', q => q.cancelled], ['wait_mean', q => fmt(q.wait.mean)], ['wait_p90', q => fmt(q.wait.p90)],
      ['walk_mean', q => fmt(q.walk.mean)], ['service_mean', q => fmt(q.service.mean)]], report.queues);
    table('#rooms', [['room', r => r.room], ['called', r => r.calls], ['completed', r => r.completed], ['missed', r => r.missed],
      ['service_mean', r => fmt(r.service.mean)], ['busy', r => fmt(r.busy_min)], ['idle', r => fmt(r.idle_min)]], report.rooms);
    table('#doctors', [['doctor', d => d.doctor], ['completed', d => d.completed], ['missed', d => d.missed], ['service_mean', d => fmt(d.service.mean)]], report.doctors);
  }

  async function load() {
    // No date yet: the server's today in the hospital's time zone.
    const day = $('#date').value;
    const r = await api(day ? `/reports/day?date=${encodeURIComponent(day)}` : '/reports/day', { token });
    if (r.status === 401 || r.status === 403) { signInForm(t('bad_token')); return; }
    $('#signin').classList.add('hidden'); $('#numbers').classList.remove('hidden');
    const err = $('#error');
    err.classList.toggle('hidden', r.ok); err.textContent = r.ok ? '' : r.error.message;
    if (r.ok) { report = r.data; $('#date').value = report.day; render(); }
  }

  function signInForm(message) {
    token = ''; sessionStorage.removeItem('cf.staff');
    $('#numbers').classList.add('hidden'); $('#signin').classList.remove('hidden');
    const e = $('#signin-error'); e.textContent = message || ''; e.classList.toggle('hidden', !message);
  }

  async function downloadCsv() {
    const r = await fetch(`/api/v1/reports/day?format=csv&date=${encodeURIComponent($('#date').value)}`, { headers: { Authorization: 'Bearer ' + token } });
    if (!r.ok) return;
    const a = el('a', { href: URL.createObjectURL(await r.blob()), download: `clinicflow-${$('#date').value}.csv` });
    document.body.append(a); a.click(); a.remove();
  }

  document.addEventListener('DOMContentLoaded', () => {
    CF.applyStatic(); CF.langButton($('#lang')); CF.onLang(render);
    $('#date').value = CF.params.get('date') || '';
    $('#date').addEventListener('change', load);
    $('#csv').addEventListener('click', downloadCsv);
    $('#signin').addEventListener('submit', ev => {
      ev.preventDefault(); token = $('#token').value.trim(); sessionStorage.setItem('cf.staff', token); load();
    });
    if (token) load(); else signInForm('');
  });
})();
