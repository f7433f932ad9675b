// The registry's dashboard: sign-in, search, an entry with its history, and the server live.
//
// Plain DOM, no framework. Entry titles, contexts and configs are written by whoever may
// register, so every text from the API enters the page through `textContent` (or `append` of a
// string, which makes a text node) and attributes set here are only ids, classes, links built
// with `encodeURIComponent` and numbers; no text is ever parsed as markup or code. The session
// is an HttpOnly cookie the page cannot read; the CSRF token the writes need lives in memory
// only, and the access token typed at sign-in is sent once and forgotten.
'use strict';

(() => {
  /** Results per page, in search and in the list. */
  const PAGE = 20;
  /** How often the live view asks for `/v1/live`, in milliseconds. */
  const LIVE_EVERY_MS = 2000;
  /** Change events kept for the feed. */
  const FEED_MAX = 50;
  const FILTERS = ['scope', 'type', 'variant', 'status'];
  const SVG = 'http://www.w3.org/2000/svg';

  const $ = (id) => document.getElementById(id);

  const state = {
    /** `GET /v1/session`'s answer while signed in; `null` otherwise. */
    session: null,
    /** The view shown: `signin`, `search`, `entry` or `live`. */
    view: null,
    /** The last search's hash, for the `/` key and the Search link. */
    searchHash: '#/',
    searchSeq: 0,
    focusSearch: false,
    entry: { id: null, seq: 0, diffSeq: 0, history: [], reload: null },
    live: { timer: null, busy: false, data: null, events: [] },
    stream: { source: null, retry: null, backoff: 5000 },
  };

  // ---- DOM helpers ------------------------------------------------------------------------

  /**
   * An element with attributes and children. `text` sets the text content; `class` the class
   * name; other attributes go through `setAttribute`. Strings among the children become text
   * nodes.
   */
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    setAttributes(node, attrs);
    for (const child of children) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : String(child));
    }
    return node;
  }

  function svg(tag, attrs) {
    const node = document.createElementNS(SVG, tag);
    setAttributes(node, attrs);
    return node;
  }

  function setAttributes(node, attrs) {
    if (!attrs) return;
    for (const [name, value] of Object.entries(attrs)) {
      if (value === undefined || value === null || value === false) continue;
      if (name === 'text') node.textContent = String(value);
      else node.setAttribute(name, value === true ? '' : String(value));
    }
  }

  function entryHref(id) {
    return '#/entry/' + encodeURIComponent(id);
  }

  function formatTime(iso) {
    if (typeof iso !== 'string') return '';
    return iso.replace('T', ' ').replace(/(\.\d+)?Z$/, '');
  }

  function timeNode(iso, short) {
    const text = formatTime(iso);
    return el('time', { datetime: iso }, short ? text.slice(0, 16) : text);
  }

  const number = new Intl.NumberFormat('en');

  function formatMs(ms) {
    if (typeof ms !== 'number' || !Number.isFinite(ms)) return '–';
    if (ms < 1) return ms.toFixed(2);
    if (ms < 10) return ms.toFixed(1);
    return String(Math.round(ms));
  }

  function setCounter(node, value) {
    if (typeof value !== 'number') {
      node.textContent = '–';
      node.removeAttribute('data-value');
      return;
    }
    node.textContent = number.format(value);
    node.setAttribute('data-value', String(value));
  }

  // ---- Messages ---------------------------------------------------------------------------

  function showMessage(text, kind) {
    $('message-text').textContent = text;
    $('message').className = 'message ' + (kind || 'error');
    $('message').hidden = false;
  }

  function clearMessage() {
    $('message').hidden = true;
    $('message-text').textContent = '';
  }

  /** Shows an API failure; a 401 while signed in means the session ended. */
  function fail(error) {
    if (error instanceof ApiError && error.status === 401 && state.session) {
      signedOut();
      showMessage('Signed out: ' + error.detail + '. Sign in again.', 'error');
      return;
    }
    const detail = error instanceof ApiError ? error.describe() : String(error && error.message);
    showMessage(detail, 'error');
  }

  // ---- The API ----------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, detail, problem) {
      super(detail);
      this.status = status;
      this.detail = detail;
      this.problem = problem;
    }

    describe() {
      if (this.status === 0) return this.detail;
      const title = this.problem && typeof this.problem.title === 'string'
        ? this.problem.title
        : 'HTTP ' + this.status;
      return title + ' (' + this.status + '): ' + this.detail;
    }
  }

  /** One request; the answer's JSON, `null` for 204; throws `ApiError` with the problem's detail. */
  async function api(method, path, body) {
    const headers = { Accept: 'application/json' };
    const init = { method, headers, credentials: 'same-origin', cache: 'no-store' };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    if (method !== 'GET' && state.session && state.session.csrf) {
      headers['X-CSRF-Token'] = state.session.csrf;
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch (e) {
      throw new ApiError(0, 'The server cannot be reached: ' + e.message, null);
    }
    if (response.status === 204) return null;
    const text = await response.text();
    let data = null;
    if (text) {
      try {
        data = JSON.parse(text);
      } catch (_) {
        data = null;
      }
    }
    if (!response.ok) {
      const detail = data && typeof data.detail === 'string'
        ? data.detail
        : (text.trim().slice(0, 300) || response.statusText || 'no detail');
      throw new ApiError(response.status, detail, data);
    }
    return data;
  }

  function enc(id) {
    return encodeURIComponent(id);
  }

  // ---- Session ----------------------------------------------------------------------------

  async function start() {
    wire();
    try {
      signedIn(await api('GET', '/v1/session'));
    } catch (e) {
      signedOut();
      if (!(e instanceof ApiError && e.status === 401)) fail(e);
    } finally {
      $('loading').hidden = true;
    }
  }

  function signedIn(session) {
    state.session = session;
    $('nav').hidden = false;
    $('who').hidden = false;
    const scopes = Array.isArray(session.scopes) && session.scopes.length > 0
      ? ' · ' + session.scopes.join(', ')
      : '';
    $('who').textContent = session.required
      ? session.name + ' · ' + session.role + scopes
      : 'open server (no token needed)';
    $('sign-out').hidden = !session.required;
    // The focus was in the sign-in form, now hidden: Tab goes on from the top of the view.
    if (!document.activeElement || document.activeElement === document.body
        || $('view-signin').contains(document.activeElement)) {
      $('main').focus({ preventScroll: true });
    }
    openStream();
    loadSuggestions();
    route();
  }

  function signedOut() {
    state.session = null;
    closeStream();
    leaveLive();
    $('nav').hidden = true;
    $('who').hidden = true;
    $('who').textContent = '';
    $('sign-out').hidden = true;
    forget();
    showView('signin');
    $('signin-token').focus();
  }

  /** Removes what the session showed, so that nothing of it stays in the page signed out. */
  function forget() {
    state.searchSeq += 1;
    state.entry.seq += 1;
    state.entry.diffSeq += 1;
    state.entry.id = null;
    state.entry.history = [];
    state.live.data = null;
    state.live.events = [];
    state.searchHash = '#/';
    $('nav-entry').removeAttribute('href');
    $('nav-entry').setAttribute('aria-disabled', 'true');
    $('nav-search').setAttribute('href', '#/');
    for (const id of ['results-body', 'entry-lifecycle', 'entry-meta', 'entry-context', 'entry-config',
      'entry-revisions', 'diff', 'diff-from', 'diff-to', 'live-feed', 'live-chart', 'live-shards']) {
      $(id).replaceChildren();
    }
    for (const id of ['results-summary', 'entry-header', 'entry-title', 'live-uptime']) $(id).textContent = '';
    for (const id of ['live-entries', 'live-changes']) setCounter($(id), null);
    for (const id of ['live-rps', 'live-latency', 'live-cache', 'live-search']) $(id).textContent = '–';
    for (const id of ['q', 'f-scope', 'f-type', 'f-variant', 'f-status']) $(id).value = '';
    $('f-retired').checked = false;
    setPager(null, null);
    document.title = 'Registry';
  }

  async function signIn(event) {
    event.preventDefault();
    const input = $('signin-token');
    const token = input.value.trim();
    if (!token) return;
    const button = event.submitter || $('signin-form').querySelector('button');
    button.disabled = true;
    try {
      const session = await api('POST', '/v1/session', { token });
      input.value = '';
      clearMessage();
      signedIn(session);
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) {
        showMessage('That token was not accepted: ' + e.detail, 'error');
        input.select();
      } else {
        fail(e);
      }
    } finally {
      button.disabled = false;
    }
  }

  async function signOut() {
    try {
      await api('DELETE', '/v1/session');
      signedOut();
      showMessage('Signed out.', 'info');
    } catch (e) {
      fail(e);
    }
  }

  /** Suggestions for the filters: the values the registry holds (`/v1/stats`). */
  async function loadSuggestions() {
    let stats;
    try {
      stats = await api('GET', '/v1/stats');
    } catch (e) {
      // A token limited to some scopes may not count them all: the filters still take any
      // value typed, only without suggestions.
      if (!(e instanceof ApiError && e.status === 403)) fail(e);
      return;
    }
    for (const field of FILTERS) {
      const counts = stats && stats['by_' + field];
      if (!counts || typeof counts !== 'object') continue;
      $('l-' + field).replaceChildren(
        ...Object.keys(counts).sort().map((value) => el('option', { value })),
      );
    }
  }

  // ---- Views and routing ------------------------------------------------------------------

  const VIEWS = ['signin', 'search', 'entry', 'live'];

  function showView(view) {
    state.view = view;
    for (const name of VIEWS) $('view-' + name).hidden = name !== view;
    for (const [name, link] of [['search', 'nav-search'], ['entry', 'nav-entry'], ['live', 'nav-live']]) {
      if (name === view) $(link).setAttribute('aria-current', 'page');
      else $(link).removeAttribute('aria-current');
    }
  }

  /** The view the address names: `#/` (search, its query in `?`), `#/entry/ID`, `#/live`. */
  function parseHash() {
    const hash = location.hash.replace(/^#/, '');
    const at = hash.indexOf('?');
    const path = at < 0 ? hash : hash.slice(0, at);
    const params = new URLSearchParams(at < 0 ? '' : hash.slice(at + 1));
    if (path.startsWith('/entry/')) {
      try {
        return { view: 'entry', id: decodeURIComponent(path.slice('/entry/'.length)) };
      } catch (_) {
        return { view: 'search', params: new URLSearchParams(), bad: path };
      }
    }
    if (path === '/live') return { view: 'live' };
    if (path === '' || path === '/') return { view: 'search', params };
    return { view: 'search', params: new URLSearchParams(), bad: path };
  }

  function route() {
    if (!state.session) return;
    const target = parseHash();
    if (target.view !== 'live') leaveLive();
    if (target.bad) showMessage('There is no view ' + target.bad + ': showing the search.', 'info');
    showView(target.view);
    if (target.view === 'search') {
      state.searchHash = location.hash || '#/';
      $('nav-search').setAttribute('href', state.searchHash);
      fillSearchForm(target.params);
      runSearch(target.params);
      if (state.focusSearch) {
        state.focusSearch = false;
        $('q').focus();
        $('q').select();
      }
    } else if (target.view === 'entry') {
      openEntry(target.id);
    } else if (target.view === 'live') {
      enterLive();
    }
  }

  /** Refreshes what the current view shows (after the event stream could not resume). */
  function refresh() {
    if (state.view === 'live') pollLive();
    else route();
  }

  // ---- Search -----------------------------------------------------------------------------

  function fillSearchForm(params) {
    $('q').value = params.get('q') || '';
    for (const field of FILTERS) $('f-' + field).value = params.get(field) || '';
    $('f-retired').checked = params.get('retired') === '1';
  }

  function searchHash(overrides) {
    const params = new URLSearchParams();
    const q = $('q').value.trim();
    if (q) params.set('q', q);
    for (const field of FILTERS) {
      const value = $('f-' + field).value.trim();
      if (value) params.set(field, value);
    }
    if ($('f-retired').checked) params.set('retired', '1');
    for (const [k, v] of Object.entries(overrides || {})) params.set(k, v);
    const query = params.toString();
    return '#/' + (query ? '?' + query : '');
  }

  function submitSearch(event) {
    event.preventDefault();
    const hash = searchHash();
    if (hash === location.hash || (hash === '#/' && location.hash === '')) route();
    else location.hash = hash;
  }

  async function runSearch(params) {
    const seq = ++state.searchSeq;
    const q = (params.get('q') || '').trim();
    const retired = params.get('retired') === '1';
    const summary = $('results-summary');
    summary.textContent = q ? 'Searching…' : 'Loading…';
    setPager(null, null);
    try {
      let rows;
      let next = null;
      let first = null;
      if (q) {
        const offset = Math.max(0, parseInt(params.get('offset') || '0', 10) || 0);
        const query = new URLSearchParams({
          q,
          retired: retired ? 'true' : 'false',
          limit: String(PAGE),
          offset: String(offset),
        });
        for (const field of FILTERS) if (params.get(field)) query.set(field, params.get(field));
        const answer = await api('GET', '/v1/search?' + query);
        if (seq !== state.searchSeq) return;
        rows = (answer.hits || []).map((hit) => hit.entry);
        const total = answer.total || 0;
        summary.textContent = total === 0
          ? 'No entry matches “' + q + '”.'
          : 'Matches ' + (offset + 1) + '–' + (offset + rows.length) + ' of ' + number.format(total)
            + ' for “' + q + '”, best first (' + formatMs(answer.took_ms) + ' ms).';
        const behind = answer.lag && typeof answer.lag.changes === 'number' ? answer.lag.changes : 0;
        if (behind > 0) {
          summary.append(' The index is ' + number.format(behind) + ' change'
            + (behind === 1 ? '' : 's') + ' behind the latest writes.');
        }
        if (offset + rows.length < total) next = searchHashFrom(params, { offset: String(offset + PAGE) });
        if (offset > 0) first = searchHashFrom(params, { offset: null });
      } else {
        const query = new URLSearchParams({ limit: String(PAGE) });
        for (const field of FILTERS) if (params.get(field)) query.set(field, params.get(field));
        if (retired) query.set('all', 'true');
        const after = params.get('after');
        if (after) query.set('after', after);
        const answer = await api('GET', '/v1/entries?' + query);
        if (seq !== state.searchSeq) return;
        rows = answer.entries || [];
        summary.textContent = rows.length === 0
          ? 'No entries' + (after ? ' after ' + after : '') + '.'
          : 'Entries in id order' + (after ? ' after ' + after : '') + ': ' + rows.length
            + (answer.next ? ', more follow.' : '.');
        if (answer.next) next = searchHashFrom(params, { after: answer.next });
        if (after) first = searchHashFrom(params, { after: null });
        if (Array.isArray(answer.damaged) && answer.damaged.length > 0) {
          showMessage('Entries failing their integrity check were left out: '
            + answer.damaged.join('; '), 'error');
        }
      }
      renderRows(rows);
      setPager(first, next);
    } catch (e) {
      if (seq !== state.searchSeq) return;
      summary.textContent = '';
      renderRows([]);
      fail(e);
    }
  }

  /** The hash of `params` with `changes` applied (`null` removes a key). */
  function searchHashFrom(params, changes) {
    const copy = new URLSearchParams(params);
    for (const [k, v] of Object.entries(changes)) {
      if (v === null) copy.delete(k);
      else copy.set(k, v);
    }
    const query = copy.toString();
    return '#/' + (query ? '?' + query : '');
  }

  function setPager(first, next) {
    for (const [id, href] of [['prev-page', first], ['next-page', next]]) {
      const link = $(id);
      link.hidden = !href;
      if (href) link.setAttribute('href', href);
      else link.removeAttribute('href');
    }
  }

  function renderRows(entries) {
    const body = $('results-body');
    if (entries.length === 0) {
      body.replaceChildren(el('tr', { class: 'empty' }, el('td', { colspan: 6 }, 'Nothing to show.')));
      return;
    }
    body.replaceChildren(...entries.map((entry) => {
      const href = entryHref(entry.id);
      const lifecycle = entry.lifecycle && entry.lifecycle !== 'active'
        ? el('span', { class: 'badge ' + entry.lifecycle }, entry.lifecycle)
        : null;
      const row = el('tr', { class: lifecycle ? 'inactive' : null },
        el('td', { class: 'id' }, el('a', { href }, entry.id)),
        el('td', { class: 'title' }, entry.title),
        el('td', null, entry.scope),
        el('td', null, entry.status, lifecycle ? ' ' : null, lifecycle),
        el('td', { class: 'num' }, String(entry.revision)),
        el('td', { class: 'when' }, timeNode(entry.updated_at, true)));
      // A click anywhere on the row opens the entry; the keyboard uses the id's link.
      row.addEventListener('click', (event) => {
        if (event.target.closest('a') || String(window.getSelection() || '') !== '') return;
        location.hash = href;
      });
      return row;
    }));
  }

  // ---- One entry --------------------------------------------------------------------------

  async function openEntry(id) {
    const seq = ++state.entry.seq;
    const changed = state.entry.id !== id;
    state.entry.id = id;
    $('nav-entry').setAttribute('href', entryHref(id));
    $('nav-entry').removeAttribute('aria-disabled');
    if (changed) {
      $('entry-header').textContent = id;
      $('entry-title').textContent = 'Loading…';
      for (const part of ['entry-lifecycle', 'entry-meta', 'entry-context', 'entry-config', 'entry-revisions', 'diff', 'diff-from', 'diff-to']) {
        $(part).replaceChildren();
      }
    }
    try {
      const [entry, history] = await Promise.all([
        api('GET', '/v1/entries/' + enc(id)),
        api('GET', '/v1/entries/' + enc(id) + '/history'),
      ]);
      if (seq !== state.entry.seq) return;
      renderEntry(entry, Array.isArray(history) ? history : [entry], changed);
      if (changed) {
        document.title = entry.id + ' · Registry';
        $('entry-title').focus();
      }
    } catch (e) {
      if (seq !== state.entry.seq) return;
      $('entry-title').textContent = 'Entry ' + id + ' could not be read';
      fail(e);
    }
  }

  function headerLine(entry) {
    if (typeof entry.header === 'string') return entry.header;
    return '[' + [entry.scope, entry.type, entry.variant, entry.id, entry.version, entry.status].join('][') + ']';
  }

  function lifecycleNode(entry) {
    if (entry.lifecycle === 'merged' && entry.merged_into) {
      return ['merged into ', el('a', { href: entryHref(entry.merged_into) }, entry.merged_into)];
    }
    return [entry.lifecycle || 'active'];
  }

  function renderEntry(entry, history, changed) {
    state.entry.history = history;
    $('entry-header').textContent = headerLine(entry);
    const badge = $('entry-lifecycle');
    badge.className = 'badge ' + (entry.lifecycle || 'active');
    badge.replaceChildren(...lifecycleNode(entry));
    $('entry-title').textContent = entry.title;
    const author = entry.author && entry.author.name ? entry.author.name : 'unknown';
    $('entry-meta').replaceChildren(
      'Revision ' + entry.revision + ' · created ', timeNode(entry.created_at),
      ' · updated ', timeNode(entry.updated_at), ' UTC by ' + author);

    const pairs = Object.entries(entry.context || {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    $('entry-context').replaceChildren(...(pairs.length === 0
      ? [el('div', { class: 'muted' }, 'No context.')]
      : pairs.map(([k, v]) => el('div', { class: 'pair' }, el('dt', null, k), el('dd', null, v)))));
    $('entry-config').textContent = entry.config || '';

    renderRevisions(history);
    const revisions = history.map((r) => r.revision);
    const from = $('diff-from');
    const to = $('diff-to');
    const keepFrom = changed ? null : from.value;
    const keepTo = changed ? null : to.value;
    from.replaceChildren(...revisions.map((n) => el('option', { value: n }, 'Revision ' + n)));
    to.replaceChildren(...revisions.map((n) => el('option', { value: n }, 'Revision ' + n)));
    const last = revisions.length ? revisions[revisions.length - 1] : 1;
    from.value = keepFrom && revisions.includes(Number(keepFrom)) ? keepFrom : String(revisions.length > 1 ? revisions[revisions.length - 2] : last);
    to.value = keepTo && revisions.includes(Number(keepTo)) ? keepTo : String(last);
    if (revisions.length > 1) {
      runDiff();
    } else {
      $('diff').replaceChildren(el('p', { class: 'muted' }, 'One revision so far: nothing to compare.'));
    }
  }

  /** What revision `after` did to `before`: its action and the fields it changed. */
  function whatChanged(before, after) {
    if (!before) return { action: 'created', fields: [] };
    const fields = [];
    for (const field of ['title', 'scope', 'type', 'variant', 'status', 'version']) {
      if (before[field] !== after[field]) fields.push(field);
    }
    const a = before.context || {};
    const b = after.context || {};
    for (const key of [...new Set([...Object.keys(a), ...Object.keys(b)])].sort()) {
      if (a[key] !== b[key]) fields.push('context.' + key);
    }
    if (before.config !== after.config) fields.push('config');
    let action = 'updated';
    if (before.lifecycle !== after.lifecycle || before.merged_into !== after.merged_into) {
      if (after.lifecycle === 'retired') action = 'retired';
      else if (after.lifecycle === 'merged') action = 'merged';
      else if (after.lifecycle === 'active') action = 'revived';
    }
    return { action, fields };
  }

  function renderRevisions(history) {
    const items = history.map((revision, i) => {
      const { action, fields } = whatChanged(i > 0 ? history[i - 1] : null, revision);
      const author = revision.author || {};
      const head = el('div', { class: 'rev-head' },
        el('span', { class: 'rev-n' }, 'r' + revision.revision),
        el('span', { class: 'action ' + action }, action),
        action === 'merged' && revision.merged_into
          ? el('span', null, 'into ', el('a', { href: entryHref(revision.merged_into) }, revision.merged_into))
          : null,
        fields.length > 0 && action !== 'created'
          ? el('span', { class: 'fields' }, fields.join(', '))
          : null);
      const who = el('div', { class: 'muted small' },
        timeNode(revision.updated_at), ' UTC · ',
        el('span', { class: 'author' }, author.name || 'unknown'),
        author.origin ? ' from ' + author.origin : '',
        author.request ? ' · request ' + author.request : '');
      const item = el('li', { 'data-revision': revision.revision }, head, who);
      if (i > 0) {
        const compare = el('button', { type: 'button', class: 'link' }, 'Compare with r' + history[i - 1].revision);
        compare.addEventListener('click', () => {
          $('diff-from').value = String(history[i - 1].revision);
          $('diff-to').value = String(revision.revision);
          runDiff();
          $('diff-from').focus();
        });
        item.append(compare);
      }
      return item;
    });
    $('entry-revisions').replaceChildren(...items.reverse());
  }

  async function runDiff(event) {
    if (event) event.preventDefault();
    const id = state.entry.id;
    const seq = ++state.entry.diffSeq;
    const from = $('diff-from').value;
    const to = $('diff-to').value;
    const box = $('diff');
    if (!from || !to) return;
    if (from === to) {
      box.replaceChildren(el('p', { class: 'muted' }, 'Choose two different revisions.'));
      return;
    }
    box.replaceChildren(el('p', { class: 'muted' }, 'Comparing…'));
    try {
      const query = new URLSearchParams({ from, to });
      const diff = await api('GET', '/v1/entries/' + enc(id) + '/diff?' + query);
      // Only the last comparison asked for is shown, whatever order the answers come in.
      if (seq !== state.entry.diffSeq || id !== state.entry.id) return;
      renderDiff(diff);
    } catch (e) {
      if (seq !== state.entry.diffSeq) return;
      box.replaceChildren();
      fail(e);
    }
  }

  function renderDiff(diff) {
    const parts = [el('p', { class: 'diff-title' }, 'Revision ' + diff.from + ' → revision ' + diff.to)];
    const changes = Array.isArray(diff.changes) ? diff.changes : [];
    if (changes.length === 0) {
      parts.push(el('p', { class: 'muted' }, 'No field changed.'));
    } else {
      parts.push(el('table', { class: 'changes' },
        el('thead', null, el('tr', null,
          el('th', { scope: 'col' }, 'Field'), el('th', { scope: 'col' }, 'Before'), el('th', { scope: 'col' }, 'After'))),
        el('tbody', null, ...changes.map((c) => el('tr', null,
          el('td', { class: 'field-name' }, c.field),
          el('td', { class: 'before' }, c.before === null || c.before === undefined ? '—' : String(c.before)),
          el('td', { class: 'after' }, c.after === null || c.after === undefined ? '—' : String(c.after)))))));
    }
    if (typeof diff.config === 'string' && diff.config !== '') {
      const lines = diff.config.replace(/\n$/, '').split('\n').map((line) => {
        let kind = 'ctx';
        if (line.startsWith('+++') || line.startsWith('---')) kind = 'file';
        else if (line.startsWith('@@')) kind = 'hunk';
        else if (line.startsWith('+')) kind = 'add';
        else if (line.startsWith('-')) kind = 'del';
        return el('span', { class: 'line ' + kind }, line + '\n');
      });
      parts.push(el('pre', { class: 'code unified', tabindex: 0, 'aria-label': 'Config diff' }, ...lines));
    } else {
      parts.push(el('p', { class: 'muted' }, 'The config is the same.'));
    }
    $('diff').replaceChildren(...parts);
  }

  // ---- Live -------------------------------------------------------------------------------

  function enterLive() {
    renderFeed();
    if (state.live.data) renderLive(state.live.data);
    pollLive();
    if (!state.live.timer) state.live.timer = setInterval(pollLive, LIVE_EVERY_MS);
  }

  function leaveLive() {
    if (state.live.timer) clearInterval(state.live.timer);
    state.live.timer = null;
  }

  async function pollLive() {
    if (state.live.busy || !state.session) return;
    state.live.busy = true;
    try {
      const data = await api('GET', '/v1/live');
      state.live.data = data;
      if (state.view === 'live') renderLive(data);
    } catch (e) {
      fail(e);
    } finally {
      state.live.busy = false;
    }
  }

  // The search index's tile. Between two readings of /v1/live, each change the stream brings
  // counts as one more the index is behind by: a change is searchable only once the indexer
  // has committed it, which the next reading says.
  function renderSearchTile(data) {
    const search = data.search || {};
    const lag = search.lag_changes || 0;
    let searchNote = 'behind by ' + number.format(lag) + (lag === 1 ? ' change · ' : ' changes · ')
      + (typeof search.lag_seconds === 'number' ? search.lag_seconds.toFixed(1) : '0') + ' s';
    if (search.error) searchNote = 'failing: ' + String(search.error);
    else if (search.ready === false) searchNote = 'catching up with storage · ' + searchNote;
    const tile = $('live-search');
    tile.dataset.lag = data.search ? String(lag) : '';
    tile.dataset.docs = data.search ? String(search.docs || 0) : '';
    tile.replaceChildren(
      data.search ? number.format(search.docs || 0) + ' docs' : 'off',
      el('span', { class: 'tile-note' + (search.error ? ' failing' : '') }, data.search ? searchNote : ''));
  }

  function renderLive(data) {
    setCounter($('live-entries'), data.entries);
    setCounter($('live-changes'), data.changes);
    const perSecond = data.requests && Array.isArray(data.requests.per_second) ? data.requests.per_second : [];
    const recent = perSecond.slice(-10);
    const mean = recent.length ? recent.reduce((a, b) => a + b, 0) / recent.length : null;
    $('live-rps').textContent = mean === null ? '–' : (mean < 10 ? mean.toFixed(1) : number.format(Math.round(mean)));
    const latency = data.latency_ms || {};
    $('live-latency').textContent = formatMs(latency.p50) + ' · ' + formatMs(latency.p90) + ' · ' + formatMs(latency.p99);
    const cache = data.cache || {};
    $('live-cache').replaceChildren(
      typeof cache.hit_rate === 'number' ? (cache.hit_rate * 100).toFixed(1) + ' %' : '–',
      el('span', { class: 'tile-note' },
        number.format(cache.hits || 0) + ' hits · ' + number.format(cache.misses || 0) + ' misses'));
    renderSearchTile(data);
    drawChart(perSecond);
    const shards = Array.isArray(data.shards) ? data.shards : [];
    $('live-shards').replaceChildren(...shards.map((s) => el('li', { class: s.healthy ? 'ok' : 'down' },
      el('span', { class: 'shard-name' }, 'Shard ' + s.shard),
      el('span', { class: 'badge ' + (s.healthy ? 'ok' : 'down') }, s.healthy ? 'healthy' : 'unavailable'),
      s.error ? el('span', { class: 'shard-error' }, String(s.error)) : null)));
    $('live-uptime').textContent = typeof data.uptime_s === 'number' ? 'Up for ' + formatUptime(data.uptime_s) + '.' : '';
  }

  function formatUptime(seconds) {
    const s = Math.floor(seconds);
    const d = Math.floor(s / 86400);
    const h = Math.floor((s % 86400) / 3600);
    const m = Math.floor((s % 3600) / 60);
    if (d > 0) return d + ' d ' + h + ' h';
    if (h > 0) return h + ' h ' + m + ' min';
    if (m > 0) return m + ' min ' + (s % 60) + ' s';
    return s + ' s';
  }

  /** Bars of the last 60 one-second counts, oldest on the left, as an inline SVG. */
  function drawChart(counts) {
    const width = 600;
    const height = 120;
    const slots = 60;
    const values = counts.slice(-slots);
    const max = Math.max(1, ...values);
    const chart = svg('svg', {
      viewBox: '0 0 ' + width + ' ' + height,
      preserveAspectRatio: 'none',
      role: 'img',
      'aria-label': 'Requests per second over the last ' + values.length + ' seconds; at most ' + max,
      class: 'bars',
    });
    const step = width / slots;
    const offset = slots - values.length;
    values.forEach((value, i) => {
      const h = value === 0 ? 0 : Math.max(1, (value / max) * (height - 4));
      const bar = svg('rect', {
        x: ((offset + i) * step + 1).toFixed(1),
        y: (height - h).toFixed(1),
        width: (step - 2).toFixed(1),
        height: h.toFixed(1),
        class: 'rate',
      });
      const tip = svg('title');
      tip.textContent = value + ' requests, ' + (values.length - 1 - i) + ' s ago';
      bar.append(tip);
      chart.append(bar);
    });
    chart.append(svg('line', { x1: 0, y1: height - 0.5, x2: width, y2: height - 0.5, class: 'baseline' }));
    // The scale is text beside the drawing, which is stretched to the box's width.
    const scale = el('div', { class: 'chart-scale' },
      el('span', null, '60 s ago'),
      el('span', null, 'highest ' + number.format(max) + '/s'),
      el('span', null, 'now'));
    $('live-chart').replaceChildren(chart, scale);
  }

  // ---- Change events ----------------------------------------------------------------------

  function setStreamState(text, kind) {
    const badge = $('live-stream');
    badge.textContent = text;
    badge.className = 'badge ' + kind;
  }

  function openStream() {
    closeStream();
    const source = new EventSource('/v1/events');
    state.stream.source = source;
    setStreamState('connecting', 'pending');
    source.addEventListener('open', () => {
      state.stream.backoff = 5000;
      setStreamState('live', 'ok');
    });
    source.addEventListener('change', onChange);
    source.addEventListener('reset', (event) => {
      let reason = 'the stream could not resume';
      try {
        const data = JSON.parse(event.data);
        if (data && typeof data.reason === 'string') reason = data.reason;
      } catch (_) {
        // The reason is only shown; the refresh happens either way.
      }
      addFeedNote('Missed changes (' + reason + '): refreshed.');
      refresh();
    });
    source.addEventListener('error', () => {
      if (source !== state.stream.source) return;
      if (source.readyState === EventSource.CLOSED) {
        // The browser gives up on an answer that is not a stream (a 401 when the session
        // ended, or the server gone): look at the session again, then reopen and refresh.
        const wait = state.stream.backoff;
        state.stream.backoff = Math.min(wait * 2, 60000);
        setStreamState('disconnected, retrying in ' + Math.round(wait / 1000) + ' s', 'down');
        state.stream.retry = setTimeout(reconnect, wait);
      } else {
        setStreamState('reconnecting', 'pending');
      }
    });
  }

  async function reconnect() {
    state.stream.retry = null;
    if (!state.session) return;
    try {
      await api('GET', '/v1/session');
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) {
        fail(e);
        return;
      }
      // The server may be away: the stream's own retry says so.
    }
    if (!state.session) return;
    openStream();
    refresh();
  }

  function closeStream() {
    if (state.stream.retry) clearTimeout(state.stream.retry);
    state.stream.retry = null;
    if (state.stream.source) state.stream.source.close();
    state.stream.source = null;
  }

  function onChange(event) {
    let change;
    try {
      change = JSON.parse(event.data);
    } catch (_) {
      showMessage('A change event could not be read: ' + String(event.data).slice(0, 200), 'error');
      return;
    }
    if (!change || typeof change !== 'object') return;
    state.live.events.unshift(change);
    state.live.events.length = Math.min(state.live.events.length, FEED_MAX);
    const data = state.live.data;
    if (data) {
      if (typeof data.changes === 'number') data.changes += 1;
      if (change.action === 'created' && typeof data.entries === 'number') data.entries += 1;
      if (data.search && typeof data.search.lag_changes === 'number') data.search.lag_changes += 1;
      if (state.view === 'live') {
        setCounter($('live-entries'), data.entries);
        setCounter($('live-changes'), data.changes);
        renderSearchTile(data);
      }
    }
    renderFeed();
    // The entry shown changed: read it again (once for a burst of changes).
    if (state.view === 'entry' && change.id === state.entry.id && !state.entry.reload) {
      state.entry.reload = setTimeout(() => {
        state.entry.reload = null;
        if (state.view === 'entry' && state.entry.id === change.id) openEntry(change.id);
      }, 300);
    }
  }

  function addFeedNote(text) {
    state.live.events.unshift({ note: text, at: new Date().toISOString() });
    state.live.events.length = Math.min(state.live.events.length, FEED_MAX);
    renderFeed();
  }

  function renderFeed() {
    const feed = $('live-feed');
    if (state.live.events.length === 0) {
      feed.replaceChildren(el('li', { class: 'muted' }, 'No change since this page opened.'));
      return;
    }
    feed.replaceChildren(...state.live.events.map((change) => {
      if (change.note) return el('li', { class: 'note' }, timeNode(change.at), ' ', change.note);
      const action = typeof change.action === 'string' ? change.action : 'changed';
      return el('li', { 'data-id': change.id },
        el('span', { class: 'when' }, timeNode(change.at)),
        el('span', { class: 'action ' + action }, action),
        typeof change.id === 'string' ? el('a', { href: entryHref(change.id) }, change.id) : null,
        change.revision ? el('span', { class: 'rev-n' }, 'r' + change.revision) : null,
        change.actor ? el('span', { class: 'muted' }, 'by ' + change.actor) : null);
    }));
  }

  // ---- Wiring -----------------------------------------------------------------------------

  function wire() {
    $('signin-form').addEventListener('submit', signIn);
    $('sign-out').addEventListener('click', signOut);
    $('message-close').addEventListener('click', clearMessage);
    $('search-form').addEventListener('submit', submitSearch);
    $('compare-form').addEventListener('submit', runDiff);
    $('diff-from').addEventListener('change', () => runDiff());
    $('diff-to').addEventListener('change', () => runDiff());
    // A message belongs to the view it was shown in.
    window.addEventListener('hashchange', () => {
      clearMessage();
      route();
    });
    document.addEventListener('keydown', (event) => {
      if (event.key !== '/' || event.ctrlKey || event.metaKey || event.altKey) return;
      const target = event.target;
      if (target instanceof Element && target.closest('input, textarea, select, [contenteditable]')) return;
      if (!state.session) return;
      event.preventDefault();
      if (state.view === 'search') {
        $('q').focus();
        $('q').select();
      } else {
        state.focusSearch = true;
        location.hash = state.searchHash;
      }
    });
  }

  start();
})();
