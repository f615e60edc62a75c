/* Live room client. Protocol: docs/protocol.md.
   - One websocket per page; on open the server sends a snapshot; every event carries `v`.
   - State events (pin, unpin, shelf, status, slow_mode) must arrive with v = last + 1;
     any other jump, or any event with v > last, asks for a new snapshot.
   - Reconnects with exponential backoff and full jitter; the page never needs a reload.
   - User text is only ever set with textContent. */
(function () {
  "use strict";
  var root = document.getElementById("room");
  if (!root) return;
  var $ = function (id) { return document.getElementById(id); };
  var STATE_EVENTS = { pin: 1, unpin: 1, shelf: 1, status: 1, slow_mode: 1 };
  // Shown while the socket is closed (a dropped network, or the server's Redis away: close
  // 1013). Chat and counts wait; buying goes over HTTP meanwhile (static/orders/buy.js).
  var RECONNECTING = "Live updates are reconnecting…";
  var state = { v: -1, me: null, room: null, pinned: null, shelf: [], snapshotPending: false };
  var ws = null, attempt = 0, reconnectTimer = null, pingTimer = null, pendingLikes = 0, likeTimer = null;
  var seenChat = new Set();
  var modTemplate = $("mod-tools");

  function wsUrl() {
    var proto = location.protocol === "https:" ? "wss://" : "ws://";
    return proto + location.host + root.dataset.wsPath;
  }

  function setConn(kind, text) {
    var el = $("conn");
    el.dataset.state = kind;
    el.textContent = text;
  }

  function send(msg) {
    if (ws && ws.readyState === WebSocket.OPEN) { ws.send(JSON.stringify(msg)); return true; }
    return false;
  }

  function connect() {
    clearTimeout(reconnectTimer);
    setConn(attempt ? "reconnecting" : "connecting", attempt ? RECONNECTING : "Connecting…");
    ws = new WebSocket(wsUrl());
    ws.onmessage = function (e) {
      var event;
      try { event = JSON.parse(e.data); } catch (err) { return; }
      handle(event);
    };
    ws.onclose = function (e) {
      clearInterval(pingTimer);
      if (e.code === 4003) { setConn("closed", "You were removed from this room"); disableChat("You have been removed from this room."); return; }
      if (e.code === 4404) { setConn("closed", "This room does not exist"); return; }
      attempt += 1;
      // exponential backoff with full jitter: 0..min(30 s, 0.5 s * 2^attempt)
      var cap = Math.min(30000, 500 * Math.pow(2, attempt));
      var delay = Math.round(Math.random() * cap) + 250;
      setConn("reconnecting", RECONNECTING);
      reconnectTimer = setTimeout(connect, delay);
    };
    ws.onopen = function () {
      pingTimer = setInterval(function () { send({ type: "ping" }); }, 25000);
    };
  }

  function requestSnapshot() {
    if (state.snapshotPending) return;
    state.snapshotPending = send({ type: "snapshot.request" });
  }

  function handle(event) {
    if (event.type === "snapshot") { applySnapshot(event); return; }
    if (state.v < 0) return; // before the first snapshot
    var v = typeof event.v === "number" ? event.v : state.v;
    if (STATE_EVENTS[event.type]) {
      if (v <= state.v) return;            // already in the snapshot
      if (v !== state.v + 1) { requestSnapshot(); return; }
      state.v = v;
    } else if (v > state.v) {
      requestSnapshot();                   // a state event went missing
    }
    switch (event.type) {
      case "pin": state.pinned = event.item; renderPinned(); break;
      case "unpin": state.pinned = null; renderPinned(); break;
      case "shelf": state.shelf = event.shelf; renderShelf(); break;
      case "status": state.room.status = event.status; state.room.publishing = event.publishing; if (event.status === "ended") { state.pinned = null; renderPinned(); } renderStatus(); break;
      case "slow_mode": state.room.slow_mode_seconds = event.seconds; note(event.seconds ? "Slow mode: one message every " + event.seconds + " s." : "Slow mode is off.", true); break;
      case "chat": addChat(event.message); break;
      case "chat.removed": removeChat(event.id); break;
      case "counts": $("viewers").textContent = fmt(event.viewers); $("likes").textContent = fmt(event.likes); break;
      case "me": state.me = event.me; renderMe(); break;
      case "resync": requestSnapshot(); break;
      case "ack": if (event.following !== undefined) setFollow(event.following, event.followers); if (event.likes !== undefined) $("likes").textContent = fmt(event.likes); break;
      case "error": onError(event); break;
    }
  }

  function applySnapshot(s) {
    state.snapshotPending = false;
    state.v = s.v; state.me = s.me; state.room = s.room; state.pinned = s.pinned; state.shelf = s.shelf;
    attempt = 0;
    setConn("live", "");
    $("viewers").textContent = fmt(s.viewers);
    $("likes").textContent = fmt(s.likes);
    $("followers").textContent = fmt(s.room.followers);
    var list = $("chat-list");
    list.textContent = "";
    seenChat.clear();
    s.chat.forEach(addChat);
    renderPinned(); renderShelf(); renderStatus(); renderMe();
  }

  function fmt(n) { return n >= 10000 ? (n / 1000).toFixed(1).replace(/\.0$/, "") + "k" : String(n); }
  function money(s) { return String(s); }

  function renderPinned() {
    var card = $("pinned-card"), item = state.pinned;
    if (!item) { card.hidden = true; return; }
    card.hidden = false;
    card.querySelectorAll("[data-field]").forEach(function (el) {
      var f = el.dataset.field;
      if (f === "image") { el.onerror = function () { el.hidden = true; }; el.src = item.image || ""; el.alt = item.title; el.hidden = !item.image; }
      else if (f === "link") { el.href = item.url; }
      else if (f === "stock") { el.textContent = item.stock_state === "sold_out" ? "Sold out" : item.stock_state === "low" ? "Only " + item.stock + " left" : "In stock"; el.dataset.state = item.stock_state; }
      else if (f === "save") {
        var save = Number(item.list_price) - Number(item.live_price);
        el.textContent = save > 0 ? "Save ¥" + save.toFixed(2) : ""; el.hidden = !(save > 0);
      } else if (f === "list_price") { el.textContent = money(item.list_price); el.parentElement.hidden = Number(item.list_price) <= Number(item.live_price); }
      else { el.textContent = item[f] == null ? "" : money(item[f]); }
    });
    var buy = card.querySelector('[data-action="buy"]');
    buy.dataset.itemId = item.id;
    buy.disabled = item.stock_state === "sold_out" || (state.room && state.room.status === "ended");
    buy.textContent = item.stock_state === "sold_out" ? "Sold out" : "Buy";
    card.classList.remove("flash"); void card.offsetWidth; card.classList.add("flash");
  }

  function renderShelf() {
    var list = $("shelf-list");
    list.textContent = "";
    $("shelf-count").textContent = state.shelf.length;
    if (!state.shelf.length) {
      var li = document.createElement("li"); li.className = "muted"; li.textContent = "No products yet."; list.appendChild(li); return;
    }
    state.shelf.forEach(function (item, i) {
      var li = document.createElement("li"); li.className = "shelf-row";
      if (state.pinned && state.pinned.id === item.id) li.classList.add("is-pinned");
      var img = document.createElement("img"); img.src = item.image || ""; img.alt = ""; img.loading = "lazy"; img.className = "shelf-img";
      var body = document.createElement("div"); body.className = "shelf-body";
      var a = document.createElement("a"); a.href = item.url; a.className = "shelf-title"; a.textContent = (i + 1) + ". " + item.title;
      var price = document.createElement("div"); price.className = "shelf-price";
      var live = document.createElement("span"); live.className = "price"; live.textContent = "¥" + item.live_price;
      price.appendChild(live);
      if (Number(item.list_price) > Number(item.live_price)) { var was = document.createElement("span"); was.className = "price-was"; was.textContent = " ¥" + item.list_price; price.appendChild(was); }
      var meta = document.createElement("div"); meta.className = "tiny muted"; meta.textContent = (item.stock_state === "sold_out" ? "Sold out" : item.stock_state === "low" ? "Only " + item.stock + " left" : "In stock") + " · Sold and shipped by " + item.retailer;
      body.append(a, price, meta);
      var buy = document.createElement("button"); buy.type = "button"; buy.className = "btn small"; buy.dataset.action = "buy"; buy.dataset.itemId = item.id; buy.textContent = "Buy"; buy.disabled = item.stock_state === "sold_out";
      li.append(img, body, buy);
      list.appendChild(li);
    });
  }

  function renderStatus() {
    var badge = $("status-badge"), st = state.room.status;
    badge.textContent = st === "live" ? "● LIVE" : st === "ended" ? "Ended" : "Starting soon";
    badge.classList.toggle("live", st === "live");
    root.dataset.status = st;
    if (st === "ended") disableChat("This show has ended.");
    // The player (static/streams/player.js) starts, stops or turns to the replay on this.
    document.dispatchEvent(new CustomEvent("room:status", { detail: { status: st, publishing: !!state.room.publishing } }));
  }

  function renderMe() {
    var me = state.me || {};
    root.dataset.role = me.role || "anonymous";
    if (me.muted_until) disableChat("You are muted until " + new Date(me.muted_until).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }) + ".");
    else if (state.room && state.room.status !== "ended") enableChat();
    setFollow(me.following, null);
  }

  function disableChat(text) {
    var form = $("chat-form"); if (form) { form.querySelector("input").disabled = true; form.querySelector("button").disabled = true; }
    note(text, false);
  }
  function enableChat() {
    var form = $("chat-form"); if (form) { form.querySelector("input").disabled = false; form.querySelector("button").disabled = false; }
  }
  var noteTimer = null;
  function note(text, transient) {
    var el = $("chat-note"); if (!el) return;
    el.textContent = text; el.hidden = !text;
    clearTimeout(noteTimer);
    if (transient) noteTimer = setTimeout(function () { el.hidden = true; }, 4000);
  }

  function addChat(m) {
    if (seenChat.has(m.id)) return;
    seenChat.add(m.id);
    var list = $("chat-list");
    var li = document.createElement("li");
    li.className = "chat-msg"; li.dataset.id = m.id; li.dataset.user = m.user.id;
    var who = document.createElement("strong"); who.textContent = m.user.name;
    if (state.room && state.room.host && m.user.id === state.room.host.id) { who.className = "is-host"; }
    var text = document.createElement("span"); text.className = "chat-text"; text.textContent = m.text;
    li.append(who, document.createTextNode(" "), text);
    var role = state.me && state.me.role;
    if (modTemplate && (role === "host" || role === "moderator") && !(state.room.host && m.user.id === state.room.host.id)) {
      li.appendChild(modTemplate.content.cloneNode(true));
    }
    list.appendChild(li);
    while (list.children.length > 120) list.removeChild(list.firstChild);
    list.scrollTop = list.scrollHeight;
  }

  function removeChat(id) {
    var li = $("chat-list").querySelector('[data-id="' + Number(id) + '"]');
    if (li) li.remove();
  }

  var ERRORS_SHOWN = { rate_limited: 1, slow_mode: 1, muted: 1, too_long: 1, empty: 1, forbidden: 1, login_required: 1, ended: 1, not_found: 1, invalid: 1, server_error: 1, bad_text: 1, unavailable: 1 };
  function onError(e) {
    if (e.code === "banned") { disableChat(e.message); return; }
    if (ERRORS_SHOWN[e.code]) note(e.message, true);
  }

  function setFollow(following, followers) {
    var btn = $("follow-btn"); if (!btn) return;
    btn.dataset.following = following ? "true" : "false";
    btn.textContent = following ? "Following" : "Follow";
    btn.classList.toggle("secondary", !!following);
    if (followers !== null && followers !== undefined) $("followers").textContent = fmt(followers);
  }

  function needsLogin(el) {
    if (el && el.hasAttribute("data-needs-login")) { location.href = root.dataset.loginUrl; return true; }
    return false;
  }

  // --- user actions ------------------------------------------------------------------
  var form = $("chat-form");
  if (form) form.addEventListener("submit", function (e) {
    e.preventDefault();
    var input = form.querySelector("input");
    var text = input.value.trim();
    if (!text) return;
    if (send({ type: "chat.send", text: text.slice(0, Number(root.dataset.chatMax) || 200) })) input.value = "";
    else note("Not connected yet; try again in a moment.", true);
  });

  $("like-btn").addEventListener("click", function (e) {
    if (needsLogin(e.currentTarget)) return;
    pendingLikes += 1;
    var btn = e.currentTarget; btn.classList.remove("pop"); void btn.offsetWidth; btn.classList.add("pop");
    $("likes").textContent = fmt((parseInt($("likes").textContent, 10) || 0) + 1);
    if (!likeTimer) likeTimer = setTimeout(flushLikes, 800); // taps batched
  });
  function flushLikes() {
    likeTimer = null;
    while (pendingLikes > 0) { var n = Math.min(50, pendingLikes); pendingLikes -= n; send({ type: "like", count: n }); }
  }

  var followBtn = $("follow-btn");
  if (followBtn) followBtn.addEventListener("click", function (e) {
    if (needsLogin(e.currentTarget)) return;
    send({ type: "follow", follow: followBtn.dataset.following !== "true" });
  });

  var drawer = $("shelf-drawer");
  function openDrawer(open) { drawer.hidden = !open; $("shelf-btn").setAttribute("aria-expanded", open ? "true" : "false"); if (open) $("shelf-close").focus(); }
  $("shelf-btn").addEventListener("click", function () { openDrawer(drawer.hidden); });
  $("shelf-close").addEventListener("click", function () { openDrawer(false); });
  drawer.addEventListener("click", function (e) { if (e.target === drawer) openDrawer(false); });
  document.addEventListener("keydown", function (e) { if (e.key === "Escape" && !drawer.hidden) openDrawer(false); });

  // Buy: the orders work listens for `room:buy` and renders into #buy-sheet-root.
  root.addEventListener("click", function (e) {
    var buy = e.target.closest('[data-action="buy"]');
    if (!buy || buy.disabled) return;
    var id = Number(buy.dataset.itemId);
    var item = (state.pinned && state.pinned.id === id) ? state.pinned : state.shelf.find(function (i) { return i.id === id; });
    root.dispatchEvent(new CustomEvent("room:buy", { bubbles: true, detail: { item: item, roomId: Number(root.dataset.roomId), send: send } }));
  });

  // Moderation from the chat (host and moderators); the server re-checks every message.
  $("chat-list").addEventListener("click", function (e) {
    var b = e.target.closest("[data-mod]"); if (!b) return;
    var li = b.closest(".chat-msg"), id = Number(li.dataset.id), user = Number(li.dataset.user);
    if (b.dataset.mod === "remove") send({ type: "chat.remove", message_id: id });
    else if (b.dataset.mod === "mute") send({ type: "mute", user_id: user, minutes: 10 });
    else if (b.dataset.mod === "ban" && confirm("Ban this viewer from the room?")) send({ type: "ban", user_id: user });
  });

  var share = $("share-btn");
  if (share) share.addEventListener("click", function () {
    var url = share.dataset.url;
    if (navigator.share) navigator.share({ title: document.title, url: url }).catch(function () {});
    else if (navigator.clipboard) navigator.clipboard.writeText(url).then(function () { share.textContent = "Link copied"; });
  });

  // Expose the connection for other scripts (the buy sheet) and tests.
  window.LiveRoom = { send: send, state: state, requestSnapshot: requestSnapshot,
                      connected: function () { return !!ws && ws.readyState === WebSocket.OPEN; } };
  document.addEventListener("visibilitychange", function () {
    if (!document.hidden && (!ws || ws.readyState === WebSocket.CLOSED)) { attempt = 0; connect(); }
  });
  connect();
})();
