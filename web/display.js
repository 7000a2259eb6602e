// Corridor and door display: the state over /ws/displays/{id}, speaking each call in Chinese
// (English after it when the display is bilingual). Calls are queued and spoken in order; one
// never cuts another off. Reconnects by itself after a server restart.
'use strict';
(() => {
  const { t, el, $ } = CF;
  CF.words({
    now_serving: '请就诊', next: '请准备', paused: '暂停接诊', waiting_none: '暂无候诊', room: '诊室', number: '号码', name: '姓名',
    enable_voice: '点击开启语音播报', recent: '最近呼叫', unknown_display: '没有这块显示屏',
  }, {
    now_serving: 'Now serving', next: 'Next', paused: 'Paused', waiting_none: 'Nobody waiting', room: 'Room', number: 'Number', name: 'Name',
    enable_voice: 'Tap to enable voice', recent: 'Recent calls', unknown_display: 'No such display',
  });
  const id = decodeURIComponent(location.pathname.split('/').filter(Boolean)[1] || '');
  // Bilingual by default; `?voice=zh` speaks Chinese only, `?voice=off` stays silent.
  const voiceMode = CF.params.get('voice') || 'zh,en';
  let state = null;
  const recent = [];           // last calls, newest first
  const speech = [];           // texts waiting to be spoken, in order
  let speaking = false;
  let conn = null;             // the display socket (acks go back on it)
  // Tell the server a call is on screen, and when its announcement has finished.
  function ack(seq, stage) { if (conn && seq !== undefined) conn.send({ type: 'ack', seq, stage }); }
  window.cfDisplay = { spoken: [], shown: [] };   // what was spoken and shown (for tests and diagnostics)

  function clock() { $('#clock').textContent = new Date().toLocaleTimeString(CF.lang === 'zh' ? 'zh-CN' : 'en-GB', { hour: '2-digit', minute: '2-digit' }); }

  function render() {
    const screen = $('#screen'); screen.textContent = '';
    if (!state) return;
    // A door names its room; a corridor names the clinics it serves.
    $('#place').textContent = state.kind === 'door'
      ? state.rooms.map(r => CF.pick(r.room_name, r.room_name_en)).join(' · ')
      : state.next.map(q => CF.pick(q.queue_name, q.queue_name_en)).join(' · ');
    if (state.kind === 'door' && state.rooms.length === 1) {
      const r = state.rooms[0];
      const nexts = state.next.flatMap(q => q.next).slice(0, 3);
      screen.append(el('section', { class: 'door' },
        el('div', { class: 'room' }, r.room_name, el('small', { text: r.room_name_en })),
        el('div', { class: 'now' },
          el('div', { class: 'label', text: r.paused ? t('paused') : t('now_serving') }),
          el('div', { class: 'number', id: 'current-number', text: r.current ? r.current.number : '—' }),
          el('div', { class: 'name', text: r.current ? r.current.name : '' })),
        el('div', { class: 'nexts' }, el('span', { class: 'label', text: t('next') }),
          nexts.length ? nexts.map(p => el('span', { class: 'n', text: `${p.number} ${p.name}` })) : el('span', { class: 'label', text: t('waiting_none') }))));
    } else {
      const rows = state.rooms.map(r => el('tr', { 'data-room': r.room, class: recent[0] && recent[0].room === r.room && Date.now() - recent[0].at < 15000 ? 'flash' : null },
        el('td', {}, CF.pick(r.room_name, r.room_name_en), r.paused ? el('span', { class: 'paused', text: ' ' + t('paused') }) : null),
        el('td', { class: 'number', text: r.current ? r.current.number : '—' }),
        el('td', { text: r.current ? r.current.name : '' })));
      // Type as large as the screen allows for this many rooms and clinics: each line takes about
      // 1.3 x its type plus 1.6vh of spacing, within ~74vh between the header and the calls line.
      const lines = rows.length + 1 + state.next.length;
      const font = Math.max(1.6, Math.min(5, (74 / lines - 1.6) / 1.3));
      screen.append(el('table', { class: 'rooms', style: { fontSize: `${font.toFixed(2)}vh` } },
        el('thead', {}, el('tr', {}, el('th', { text: t('room') }), el('th', { text: t('number') }), el('th', { text: t('name') }))),
        el('tbody', {}, rows)));
      screen.append(el('div', { class: 'queues', style: { fontSize: `${(font * 0.85).toFixed(2)}vh` } }, state.next.map(q => el('div', {},
        el('b', { text: CF.pick(q.queue_name, q.queue_name_en) + '：' }),
        q.next.length ? q.next.map(p => p.number).join('  ') : t('waiting_none')))));
    }
    $('#calls').textContent = recent.length ? t('recent') + '：' + recent.slice(0, 4).map(c => `${c.number} → ${CF.pick(c.room_name, c.room_name_en)}`).join('   ') : '';
    window.cfDisplay.shown.push({ at: Date.now(), state: state.at });
    if (window.cfDisplay.shown.length > 100) window.cfDisplay.shown.shift();
  }

  // ---- voice: a queue, spoken one at a time ----
  function voiceFor(langTag) {
    const voices = window.speechSynthesis ? speechSynthesis.getVoices() : [];
    return voices.find(v => v.lang === langTag) || voices.find(v => v.lang && v.lang.startsWith(langTag.slice(0, 2)));
  }
  function speakNext() {
    if (speaking || !speech.length) return;
    const item = speech.shift();
    speaking = true;
    const done = () => {
      if (!speaking) return;
      speaking = false;
      window.cfDisplay.spoken.push({ text: item.text, seq: item.seq, at: Date.now() });
      if (window.cfDisplay.spoken.length > 100) window.cfDisplay.spoken.shift();
      if (item.last) ack(item.seq, 'spoken');
      speakNext();
    };
    if (!window.speechSynthesis || voiceMode === 'off') { setTimeout(done, 0); return; }
    try {
      const u = new SpeechSynthesisUtterance(item.text);
      u.lang = item.lang; const v = voiceFor(item.lang); if (v) u.voice = v;
      u.rate = 0.9;
      u.onend = done; u.onerror = done;
      // It speaks: the browser needs no tap to enable the voice.
      u.onstart = () => $('#voice').classList.add('hidden');
      // A synthesiser that never reports the end must not block the queue forever.
      setTimeout(done, 4000 + item.text.length * 350);
      speechSynthesis.speak(u);
    } catch (_) { setTimeout(done, 0); }
  }
  function announce(a) {
    recent.unshift({ number: a.number, room: a.room, room_name: a.room_name, room_name_en: a.room_name_en, at: Date.now() });
    recent.length = Math.min(recent.length, 8);
    const langs = voiceMode.split(',');
    const items = [];
    if (langs.includes('zh')) items.push({ text: a.text_zh, lang: 'zh-CN', seq: a.seq });
    if (langs.includes('en') && a.text_en) items.push({ text: a.text_en, lang: 'en-US', seq: a.seq });
    if (items.length) items[items.length - 1].last = true;
    else items.push({ text: '', lang: 'zh-CN', seq: a.seq, last: true, silent: true });
    speech.push(...items.filter(i => !i.silent));
    render();
    ack(a.seq, 'shown');
    // Silent display: shown is all there is to say.
    if (items.some(i => i.silent)) ack(a.seq, 'spoken');
    speakNext();
  }

  document.addEventListener('DOMContentLoaded', () => {
    CF.applyStatic(); clock(); setInterval(clock, 10000);
    // Browsers speak only after a user gesture unless started with --autoplay-policy=no-user-gesture-required.
    if (window.speechSynthesis && voiceMode !== 'off' && navigator.userActivation && !navigator.userActivation.hasBeenActive) {
      $('#voice').classList.remove('hidden');
      $('#voice').addEventListener('click', () => { $('#voice').classList.add('hidden'); speechSynthesis.speak(new SpeechSynthesisUtterance(' ')); });
    }
    conn = CF.live(`/ws/displays/${encodeURIComponent(id)}`, {
      onStatus: up => $('#lost').classList.toggle('hidden', up),
      onMessage: m => {
        if (m.type === 'state') { state = m; render(); }
        else if (m.type === 'announce') announce(m);
      },
    });
  });
})();
