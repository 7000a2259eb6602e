// Nurse / doctor console: sign in with a staff token, pick a room, call and manage patients.
// The live queue is read every 2 s and after every action.
'use strict';
(() => {
  const { t, el, $, api } = CF;
  CF.words({
    title: '叫号台', sign_in: '登录', sign_out: '退出', token: '令牌', sign_in_help: '请输入工作人员令牌（由信息科发放）。',
    bad_token: '令牌无效或已过期，请重新输入。', forbidden: '此令牌无权使用叫号台。',
    room: '诊室', now_serving: '当前患者', call_next: '叫下一位', recall: '重呼', skip: '过号', complete: '完成',
    pause: '暂停接诊', resume: '恢复接诊', transfer_to: '转到', transfer: '转诊', waiting: '候诊队列',
    col_pos: '序', col_number: '号码', col_name: '姓名', col_queue: '队列', nobody_waiting: '暂无候诊患者',
    nobody_to_call: '没有候诊患者。', called: '已呼叫 {number}', recalled: '已重呼 {number}', skipped: '{number} 已过号',
    completed: '{number} 已完成', transferred: '{number} 已转到 {queue}', paused: '诊室已暂停', resumed: '诊室已恢复',
    no_current: '当前没有患者。', people: '{n} 人', priority: '优先', returning: '回诊', paused_tag: '暂停中',
  }, {
    title: 'Caller console', sign_in: 'Sign in', sign_out: 'Sign out', token: 'Token', sign_in_help: 'Enter your staff token (issued by IT).',
    bad_token: 'The token is not valid or has expired. Please enter it again.', forbidden: 'This token may not use the console.',
    room: 'Room', now_serving: 'Now serving', call_next: 'Call next', recall: 'Recall', skip: 'Skip', complete: 'Complete',
    pause: 'Pause room', resume: 'Resume room', transfer_to: 'Transfer to', transfer: 'Transfer', waiting: 'Waiting',
    col_pos: '#', col_number: 'Number', col_name: 'Name', col_queue: 'Queue', nobody_waiting: 'Nobody is waiting',
    nobody_to_call: 'Nobody is waiting.', called: 'Called {number}', recalled: 'Recalled {number}', skipped: '{number} skipped',
    completed: '{number} completed', transferred: '{number} transferred to {queue}', paused: 'Room paused', resumed: 'Room resumed',
    no_current: 'No current patient.', people: '{n} waiting', priority: 'priority', returning: 'return', paused_tag: 'paused',
  });

  let token = sessionStorage.getItem('cf.staff') || '';
  let queues = [];          // latest snapshots
  let room = localStorage.getItem('cf.room') || '';
  let timer = null, busy = false;

  function show(id, text) { const e = $(id); e.textContent = text || ''; e.classList.toggle('hidden', !text); }
  function say(text) { show('#info', text); show('#error', ''); }
  function fail(err) {
    if (err.status === 401) { signOut(t('bad_token')); return; }
    show('#info', ''); show('#error', err.error.message || err.error.code);
  }

  function signOut(message) {
    token = ''; sessionStorage.removeItem('cf.staff'); clearInterval(timer);
    $('#desk').classList.add('hidden'); $('#signout').classList.add('hidden'); $('#signin').classList.remove('hidden');
    show('#signin-error', message || ''); $('#who').textContent = '';
  }

  async function signIn(candidate) {
    const r = await api('/queues', { token: candidate });
    if (!r.ok) {
      show('#signin-error', r.status === 401 ? t('bad_token') : r.status === 403 ? t('forbidden') : r.error.message);
      return false;
    }
    token = candidate; sessionStorage.setItem('cf.staff', token);
    queues = r.data.queues;
    $('#signin').classList.add('hidden'); $('#desk').classList.remove('hidden'); $('#signout').classList.remove('hidden');
    show('#signin-error', '');
    fillRooms(); render();
    clearInterval(timer); timer = setInterval(refresh, 2000);
    return true;
  }

  // Rooms in config order, each with the queues it calls from.
  function rooms() {
    const m = new Map();
    for (const q of queues) for (const r of q.rooms) {
      if (!m.has(r.id)) m.set(r.id, { id: r.id, name: r.name, name_en: r.name_en, queues: [] });
      m.get(r.id).queues.push(q);
    }
    return [...m.values()];
  }
  function currentRoom() { return rooms().find(r => r.id === room) || rooms()[0]; }

  function fillRooms() {
    const sel = $('#room'); sel.textContent = '';
    for (const r of rooms()) sel.append(el('option', { value: r.id, text: `${CF.pick(r.name, r.name_en)} (${r.queues.map(q => CF.pick(q.name, q.name_en)).join(', ')})` }));
    if (!rooms().some(r => r.id === room)) room = rooms()[0] ? rooms()[0].id : '';
    sel.value = room;
    const to = $('#transfer-to'); to.textContent = '';
    for (const q of queues) to.append(el('option', { value: q.id, text: CF.pick(q.name, q.name_en) }));
  }

  function roomView(r) {
    for (const q of r.queues) { const v = q.rooms.find(x => x.id === r.id); if (v && v.current_ticket) return { view: v, queue: q }; }
    return { view: r.queues[0] && r.queues[0].rooms.find(x => x.id === r.id), queue: r.queues[0] };
  }

  function render() {
    const r = currentRoom(); if (!r) return;
    const { view } = roomView(r);
    $('#current').textContent = (view && view.current_number) || '—';
    $('#current-name').textContent = (view && view.current_masked_name) || '';
    const paused = !!(view && view.paused);
    $('#pause-label').textContent = t(paused ? 'resume' : 'pause');
    $('#pause').dataset.paused = paused ? '1' : '';
    const has = !!(view && view.current_ticket);
    for (const b of ['#recall', '#skip', '#complete', '#transfer']) $(b).disabled = !has;
    const rows = [];
    for (const q of r.queues) for (const w of q.waiting) rows.push({ w, q });
    rows.sort((a, b) => a.w.position - b.w.position);
    const body = $('#waiting'); body.textContent = '';
    rows.forEach(({ w, q }, i) => body.append(el('tr', { 'data-number': w.number },
      el('td', { text: i + 1 }), el('td', {}, el('b', { text: w.number })), el('td', { text: w.masked_name }),
      el('td', { text: CF.pick(q.name, q.name_en) }),
      el('td', {}, w.priority !== 'normal' ? el('span', { class: 'tag', text: t('priority') }) : null, w.kind === 'return' ? el('span', { class: 'tag', text: t('returning') }) : null))));
    $('#empty').classList.toggle('hidden', rows.length > 0);
    $('#count').textContent = t('people', { n: rows.length });
  }

  async function refresh() {
    if (!token || document.hidden) return;
    const r = await api('/queues', { token });
    $('#lost').classList.toggle('hidden', r.ok || r.status !== 0);
    if (!r.ok) { if (r.status === 401) signOut(t('bad_token')); return; }
    queues = r.data.queues; render();
  }

  async function act(fn) {
    if (busy) return; busy = true;
    try { await fn(); await refresh(); } finally { busy = false; }
  }

  async function callNext() {
    const r = currentRoom(); if (!r) return;
    for (const q of r.queues) {
      const res = await api(`/queues/${encodeURIComponent(q.id)}/call-next`, { method: 'POST', token, body: { room: r.id } });
      if (!res.ok) return fail(res);
      if (res.status === 200) return say(t('called', { number: res.data.number }));
    }
    say(t('nobody_to_call'));
  }
  async function onCurrent(action, message, body) {
    const r = currentRoom(); const { view } = roomView(r);
    if (!view || !view.current_ticket) return say(t('no_current'));
    const res = await api(`/tickets/${encodeURIComponent(view.current_ticket)}/${action}`, { method: 'POST', token, body: body || {} });
    if (!res.ok) return fail(res);
    say(t(message, { number: res.data.number, queue: CF.pick(res.data.queue_name, res.data.queue_name_en) }));
  }
  async function pause() {
    const r = currentRoom(); const paused = $('#pause').dataset.paused === '1';
    const res = await api(`/rooms/${encodeURIComponent(r.id)}/${paused ? 'resume' : 'pause'}`, { method: 'POST', token, body: {} });
    if (!res.ok) return fail(res);
    say(t(paused ? 'resumed' : 'paused'));
  }
  const actions = {
    callNext: () => act(callNext),
    recall: () => act(() => onCurrent('recall', 'recalled')),
    skip: () => act(() => onCurrent('skip', 'skipped')),
    complete: () => act(() => onCurrent('complete', 'completed')),
    transfer: () => act(() => onCurrent('transfer', 'transferred', { to: $('#transfer-to').value })),
    pause: () => act(pause),
  };

  document.addEventListener('DOMContentLoaded', () => {
    CF.applyStatic();
    CF.langButton($('#lang'));
    CF.onLang(() => { fillRooms(); render(); });
    $('#signin').addEventListener('submit', ev => { ev.preventDefault(); signIn($('#token').value.trim()); });
    $('#signout').addEventListener('click', () => signOut());
    $('#room').addEventListener('change', ev => { room = ev.target.value; localStorage.setItem('cf.room', room); show('#info', ''); show('#error', ''); render(); });
    $('#call-next').addEventListener('click', actions.callNext);
    $('#recall').addEventListener('click', actions.recall);
    $('#skip').addEventListener('click', actions.skip);
    $('#complete').addEventListener('click', actions.complete);
    $('#transfer').addEventListener('click', actions.transfer);
    $('#pause').addEventListener('click', actions.pause);
    document.addEventListener('keydown', ev => {
      if (!token || ev.ctrlKey || ev.metaKey || ev.altKey) return;
      const typing = ['INPUT', 'SELECT', 'TEXTAREA'].includes(document.activeElement && document.activeElement.tagName);
      const k = ev.key.toLowerCase();
      if (k === 'f1') { ev.preventDefault(); actions.callNext(); return; }
      if (typing) return;
      // T chooses the target first: a transfer is not a one-key action.
      if (k === 't') { ev.preventDefault(); $('#transfer-to').focus(); return; }
      const map = { n: 'callNext', r: 'recall', s: 'skip', c: 'complete', p: 'pause' };
      if (map[k]) { ev.preventDefault(); actions[map[k]](); }
    });
    if (token) signIn(token); else $('#token').focus();
  });
})();
