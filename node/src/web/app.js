// skep web view: follows /ui/watch (one snapshot line, then one delta line per store version) and draws nodes as
// columns and tasks as cards. One stream per page; on its end, a reconnect with backoff and a fresh snapshot.
// Changes are batched into one requestAnimationFrame and touch only the cards that changed (keyed by task ID).
'use strict';
(() => {
  const nodes = new Map(), services = new Map(), tasks = new Map();
  const cols = new Map();   // node ID ('' for unassigned) -> {el, h2, list}
  const cards = new Map();  // task ID -> element
  const dirtyTasks = new Set(), dirtyNodes = new Set();
  let full = false, refilter = false, servicesChanged = false, queued = false;
  // a snapshot's cards are built a screenful first, the rest in later tasks (`building` until done; a newer snapshot
  // starts a new generation and the older build stops)
  let building = false, generation = 0;
  const FIRST_CARDS = 600, CHUNK_CARDS = 1000;
  const $ = id => document.getElementById(id);
  const board = $('board');
  const filter = { service: '', stack: '', current: false };

  // a service's colour: a stable hue from its ID
  const hue = s => {
    let h = 0;
    for (let i = 0; i < s.length; i++) h = (h * 31 + s.charCodeAt(i)) | 0;
    return ((h % 360) + 360) % 360;
  };
  // history: tasks their service no longer wants (`service ps` lists them too, as \_)
  const isOld = t => t.desired === 'shutdown' || t.desired === 'remove';
  const svcName = t => (services.get(t.service) || {}).name || t.service.slice(0, 12);
  const visible = t => (!filter.service || t.service === filter.service)
    && (!filter.stack || (services.get(t.service) || {}).stack === filter.stack)
    && (!filter.current || !isOld(t));

  // health: a task with a healthcheck is `starting` until healthy and `running` once healthy (as Docker's)
  function health(t) {
    const s = services.get(t.service);
    if (!s || !s.health) return '';
    if (t.state === 'running') return 'healthy';
    if (t.state === 'starting') return 'health: starting';
    return '';
  }

  function schedule() {
    if (!queued) { queued = true; requestAnimationFrame(render); }
  }

  function apply(m) {
    if (m.t === 'snapshot') {
      nodes.clear(); services.clear(); tasks.clear();
      for (const n of m.nodes) nodes.set(n.id, n);
      for (const s of m.services) services.set(s.id, s);
      for (const t of m.tasks) tasks.set(t.id, t);
      full = true; servicesChanged = true;
    } else if (m.t === 'delta') {
      for (const n of m.nodes || []) { nodes.set(n.id, n); dirtyNodes.add(n.id); }
      for (const id of m.gone_nodes || []) { nodes.delete(id); dirtyNodes.add(id); }
      const changed = new Set();
      for (const s of m.services || []) { services.set(s.id, s); changed.add(s.id); }
      for (const id of m.gone_services || []) { services.delete(id); changed.add(id); }
      if (changed.size) {
        servicesChanged = true;
        for (const t of tasks.values()) if (changed.has(t.service)) dirtyTasks.add(t.id);
      }
      for (const t of m.tasks || []) { tasks.set(t.id, t); dirtyTasks.add(t.id); }
      for (const id of m.gone_tasks || []) { tasks.delete(id); dirtyTasks.add(id); }
    }
    schedule();
  }

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text) e.textContent = text;
    return e;
  }

  function nodeOrder(a, b) {
    const r = (a.role === 'manager' ? 0 : 1) - (b.role === 'manager' ? 0 : 1);
    return r || a.name.localeCompare(b.name) || a.id.localeCompare(b.id);
  }

  function column(id) {
    let c = cols.get(id);
    if (!c) {
      const e = el('section', 'col'), h2 = el('h2'), list = el('div', 'cards');
      e.dataset.node = id;
      e.append(h2, list);
      c = { el: e, h2, list };
      cols.set(id, c);
      heading(id);
      board.append(e);
    }
    return c;
  }

  function heading(id) {
    const c = cols.get(id), n = nodes.get(id);
    if (!c) return;
    if (!id) { c.h2.textContent = 'unassigned'; c.el.dataset.state = ''; return; }
    c.h2.textContent = n ? n.name : id.slice(0, 12);
    if (n && n.leader) c.h2.append(el('span', 'leader', ' ★ leader'));
    c.h2.append(el('span', 'meta', n ? `${n.role} · ${n.availability} · ${n.state}` : 'removed'));
    c.h2.append(el('span', 'meta', id.slice(0, 12)));
    c.el.dataset.state = n ? n.state : 'removed';
    c.el.dataset.leader = n && n.leader ? '1' : '';
  }

  function fill(e, t) {
    e.dataset.state = t.state;
    e.dataset.service = t.service;
    e.style.setProperty('--hue', hue(t.service));
    e.classList.toggle('old', isOld(t));
    const label = t.slot ? `${svcName(t)}.${t.slot}` : svcName(t);
    const sub = [t.id.slice(0, 12)];
    if (t.desired !== t.state && t.desired !== 'running') sub.push(`→ ${t.desired}`);
    const h = health(t);
    if (h) sub.push(h);
    if (t.err) sub.push(t.err);
    e.firstChild.textContent = label;
    e.children[1].textContent = t.state;
    e.lastChild.textContent = sub.join(' · ');
    e.title = `${t.id}\n${sub.slice(1).join('\n')}`;
    e.hidden = !visible(t);
  }

  function card(t) {
    const e = el('div', 'card');
    e.dataset.id = t.id;
    e.append(el('span', 'name'), el('span', 'st'), el('span', 'sub'));
    cards.set(t.id, e);
    return e;
  }

  function rebuild() {
    board.textContent = '';
    cols.clear(); cards.clear();
    [...nodes.values()].sort(nodeOrder).forEach(n => column(n.id));
    const sorted = [...tasks.values()].sort((a, b) => svcName(a).localeCompare(svcName(b))
      || a.slot - b.slot || isOld(a) - isOld(b) || a.id.localeCompare(b.id));
    // the columns' tasks in column order, so the first chunk fills the columns a screen shows
    const byCol = new Map([...cols.keys()].map(id => [id, []]));
    for (const t of sorted) {
      if (!byCol.has(t.node)) byCol.set(t.node, []);
      byCol.get(t.node).push(t.id);
    }
    const queue = [...byCol.values()].flat();
    const gen = ++generation;
    building = true;
    let at = buildChunk(queue, 0, FIRST_CARDS);
    const more = () => {
      if (gen !== generation) return;
      at = buildChunk(queue, at, CHUNK_CARDS);
      if (at < queue.length) { setTimeout(more, 0); return; }
      done();
    };
    const done = () => {
      building = false;
      if (!performance.getEntriesByName('skep-complete').length) performance.mark('skep-complete');
      schedule();
    };
    // the rest once the first screenful is painted: a frame first, then a task per chunk
    if (at < queue.length) requestAnimationFrame(() => setTimeout(more, 0)); else done();
  }

  // cards for queue[from..from+n] as the tasks are now (one a delta made meanwhile, or a task gone, is skipped);
  // returns where the next chunk starts
  function buildChunk(queue, from, n) {
    const frags = new Map(), end = Math.min(queue.length, from + n);
    for (let i = from; i < end; i++) {
      const t = tasks.get(queue[i]);
      if (!t || cards.has(t.id)) continue;
      const c = column(t.node);
      let f = frags.get(c);
      if (!f) frags.set(c, f = document.createDocumentFragment());
      const e = card(t);
      fill(e, t);
      f.append(e);
    }
    for (const [c, f] of frags) c.list.append(f);
    return end;
  }

  function update(id) {
    const t = tasks.get(id);
    let e = cards.get(id);
    if (!t) { if (e) { e.remove(); cards.delete(id); } return; }
    if (!e) e = card(t);
    fill(e, t);
    const list = column(t.node).list;
    if (e.parentNode !== list) list.append(e);
  }

  function options(select, values) {
    const keep = select.value;
    select.length = 1;
    for (const [v, label] of values) select.append(new Option(label, v));
    select.value = values.some(([v]) => v === keep) ? keep : '';
    if (select.value !== keep) { filter[select.id.slice(2)] = ''; refilter = true; }
  }

  function render() {
    queued = false;
    if (servicesChanged) {
      servicesChanged = false;
      const svcs = [...services.values()].sort((a, b) => a.name.localeCompare(b.name));
      options($('f-service'), svcs.map(s => [s.id, s.name]));
      options($('f-stack'), [...new Set(svcs.map(s => s.stack).filter(Boolean))].sort().map(s => [s, s]));
    }
    if (full) {
      full = false;
      rebuild();
      // User Timing marks (for bench/web): the first screenful built from the snapshot, then the next frame begun
      // (painted); `skep-complete` when every card is built
      if (!performance.getEntriesByName('skep-render').length) {
        performance.mark('skep-render');
        requestAnimationFrame(() => performance.mark('skep-painted'));
      }
    } else {
      for (const id of dirtyNodes) {
        if (!nodes.has(id) && cols.has(id) && !cols.get(id).list.firstChild) {
          cols.get(id).el.remove();
          cols.delete(id);
        }
        else if (nodes.has(id)) { column(id); heading(id); }
        else heading(id);
      }
      for (const id of dirtyTasks) update(id);
      if (refilter) for (const [id, e] of cards) e.hidden = !visible(tasks.get(id));
    }
    dirtyNodes.clear(); dirtyTasks.clear(); refilter = false;
    let shown = 0;
    for (const t of tasks.values()) if (visible(t)) shown++;
    $('counts').textContent = `${nodes.size} nodes · ${shown} of ${tasks.size} tasks`;
    // ready: every card of the last snapshot built (tests and the benchmark wait for it)
    document.body.dataset.ready = building ? '' : '1';
  }

  function status(state, error) {
    const c = $('conn');
    c.dataset.state = state;
    c.textContent = state;
    $('error').hidden = !error;
    $('error').textContent = error || '';
  }

  const sleep = ms => new Promise(r => setTimeout(r, ms));

  // one stream at a time; newline-delimited JSON; a `reset` line or the end of the stream: reconnect
  async function follow() {
    let delay = 500;
    for (;;) {
      let error = '';
      try {
        status('connecting');
        const r = await fetch('watch', { cache: 'no-store' });
        if (!r.ok) {
          const j = await r.json().catch(() => ({}));
          throw new Error(j.message || `${r.status} ${r.statusText}`);
        }
        const reader = r.body.getReader(), dec = new TextDecoder();
        let buf = '', from = 0;
        for (let reset = false; !reset;) {
          const { value, done } = await reader.read();
          if (done) break;
          buf += dec.decode(value, { stream: true });
          for (let i; !reset && (i = buf.indexOf('\n', from)) >= 0; from = 0) {
            const m = JSON.parse(buf.slice(0, i));
            buf = buf.slice(i + 1);
            if (m.t === 'reset') { reset = true; delay = 0; reader.cancel().catch(() => {}); break; }
            if (m.t === 'snapshot') { status('live'); delay = 500; }
            apply(m);
          }
          from = buf.length;
        }
      } catch (e) {
        error = `${e.message || e}`;
      }
      status('down', error);
      await sleep(delay);
      delay = Math.min(Math.max(delay * 2, 500), 15000);
    }
  }

  for (const id of ['f-service', 'f-stack']) {
    $(id).addEventListener('change', e => { filter[id.slice(2)] = e.target.value; refilter = true; schedule(); });
  }
  $('f-current').addEventListener('change', e => { filter.current = e.target.checked; refilter = true; schedule(); });
  const theme = localStorage.getItem('skep-theme');
  if (theme) document.documentElement.dataset.theme = theme;
  $('theme').addEventListener('click', () => {
    const dark = document.documentElement.dataset.theme
      ? document.documentElement.dataset.theme === 'dark' : matchMedia('(prefers-color-scheme: dark)').matches;
    document.documentElement.dataset.theme = dark ? 'light' : 'dark';
    localStorage.setItem('skep-theme', document.documentElement.dataset.theme);
  });
  follow();
})();
