/* The room's video player: live HLS from the media server, or the replay once the room
 * has ended. Markup: templates/streams/_player.html; hls.js is vendored in
 * static/vendor/hls.js/ (Safari plays HLS natively and does not need it).
 *
 * Talking to the player from the rest of the page
 * ------------------------------------------------
 * - The real-time page tells it when the room's status changes, so the video starts and
 *   stops without a reload:
 *
 *     document.dispatchEvent(new CustomEvent("room:status", {detail: {status, publishing}}));
 *
 *   status is "scheduled" | "live" | "ended"; publishing is true while an encoder is
 *   sending video (optional; a missing value means "unknown, try").
 * - window.roomPlayer.seek(seconds) plays the replay from that offset (product moments
 *   call it; any element with data-seek="<seconds>" does so when clicked).
 * - window.roomPlayer.state is the current state; the player also fires
 *   document "player:state" events ({detail: {state, mode}}) and mirrors it in the
 *   section's data-state attribute: soon | loading | playing | paused | offline | ended.
 *
 * Behaviour: muted autoplay with a tap-to-unmute button; low-latency live settings;
 * while the room is live and the video cannot load (no media server, encoder not
 * publishing, manifest errors) it says "Video offline" and keeps retrying with backoff;
 * fatal network errors restart loading, media errors are recovered, and a watchdog
 * reloads the source when playback stops advancing.
 */
(function () {
  "use strict";

  var root = document.querySelector("[data-player]");
  var configNode = document.getElementById("player-config");
  if (!root || !configNode) return;

  var cfg = JSON.parse(configNode.textContent);
  var video = root.querySelector("video");
  var titleEl = root.querySelector("[data-title]");
  var subEl = root.querySelector("[data-sub]");
  var badge = root.querySelector("[data-badge]");
  var unmute = root.querySelector("[data-unmute]");

  var LIVE_CONFIG = {
    lowLatencyMode: true,
    liveSyncDurationCount: 3, // start ~3 fragments behind the edge (1 s fragments)
    liveMaxLatencyDurationCount: 8, // further behind than this: jump forward
    maxLiveSyncPlaybackRate: 1.25, // catch up gently by playing slightly faster
    backBufferLength: 30,
    maxBufferLength: 10,
    manifestLoadingMaxRetry: 1,
    levelLoadingMaxRetry: 4,
    fragLoadingMaxRetry: 4,
  };
  var REPLAY_CONFIG = {
    startPosition: 0,
    backBufferLength: 90,
    maxBufferLength: 30,
    manifestLoadingMaxRetry: 1,
    fragLoadingMaxRetry: 6,
  };
  var STALL_SECONDS = 8; // no progress for this long while playing: reload the source
  var MAX_BACKOFF = 30000;
  var REPLAY_TRIES = 8; // the replay appears a moment after the room ends

  var status = cfg.status; // room status as the page last heard it
  var publishing = cfg.publishing;
  var mode = null; // "live" | "replay" | null
  var hls = null;
  var state = root.getAttribute("data-state");
  var retryTimer = null;
  var failures = 0;
  var mediaErrorAt = 0;
  var pendingSeek = null;
  var replayUrl = cfg.replayUrl;
  var replayTries = 0;
  var lastTime = -1;
  var stalledFor = 0;
  var userMuted = true;

  var COPY = {
    soon: ["Starting soon", ""],
    loading: ["Connecting to the live video…", ""],
    offline: ["Video offline", "We'll keep trying; the show goes on in the chat."],
    waiting: ["Waiting for the host's video", "The room is live; the camera will appear here."],
    reconnecting: ["Reconnecting…", "The video stalled; picking it up again."],
    preparing: ["The show has ended", "Preparing the replay…"],
    replayLoading: ["Loading the replay…", ""],
    ended: ["This show has ended", "No recording is available."],
  };

  // --- state and overlay ------------------------------------------------------------

  function setState(next, copyKey) {
    state = next;
    root.setAttribute("data-state", next);
    root.setAttribute("data-live", mode === "live" && next === "playing" ? "1" : "0");
    root.setAttribute("data-replay", mode === "replay" ? "1" : "0");
    var copy = COPY[copyKey || next];
    if (copy) {
      titleEl.textContent = copy[0];
      if (next === "soon" && cfg.scheduledStart) {
        subEl.textContent = "";
        var when = document.createElement("time");
        when.dateTime = cfg.scheduledStart;
        when.textContent = new Date(cfg.scheduledStart).toLocaleString(undefined, {
          weekday: "short", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit",
        });
        subEl.appendChild(when);
      } else {
        subEl.textContent = copy[1];
      }
    }
    if (mode === "live" || mode === "replay") {
      badge.hidden = false;
      badge.textContent = mode === "live" ? "Live" : "Replay";
    } else {
      badge.hidden = status !== "live";
    }
    unmute.hidden = !(video.muted && userMuted && next === "playing");
    document.dispatchEvent(new CustomEvent("player:state", { detail: { state: next, mode: mode } }));
  }

  function backoff() {
    failures += 1;
    return Math.min(MAX_BACKOFF, 1000 * Math.pow(2, Math.min(failures - 1, 5)));
  }

  function clearRetry() {
    if (retryTimer) clearTimeout(retryTimer);
    retryTimer = null;
  }

  function retry(fn, delay) {
    clearRetry();
    retryTimer = setTimeout(function () {
      retryTimer = null;
      fn();
    }, delay);
  }

  // --- loading a source --------------------------------------------------------------

  function teardown() {
    clearRetry();
    if (hls) {
      hls.destroy();
      hls = null;
    }
    video.removeAttribute("src");
    try { video.load(); } catch (e) { /* nothing loaded */ }
  }

  // Safari (and every iOS browser, all WebKit) plays HLS natively and well: use it there.
  // Chromium now also answers canPlayType for HLS, but the low-latency tuning and stall
  // recovery live in hls.js, so everywhere else hls.js plays whenever it can.
  function useNative() {
    var native = !!video.canPlayType("application/vnd.apple.mpegurl");
    var hlsjs = !!(window.Hls && window.Hls.isSupported());
    var webkit = navigator.vendor === "Apple Computer, Inc.";
    return native && (webkit || !hlsjs);
  }

  function load(url, live) {
    teardown();
    lastTime = -1;
    stalledFor = 0;
    video.controls = !live;
    if (useNative()) {
      if (!video.canPlayType("application/vnd.apple.mpegurl")) {
        setState("offline", "offline");
        subEl.textContent = "This browser cannot play live video.";
        return;
      }
      video.src = url;
      play();
      return;
    }
    var Hls = window.Hls;
    hls = new Hls(live ? LIVE_CONFIG : REPLAY_CONFIG);
    hls.on(Hls.Events.MANIFEST_PARSED, function () { play(); });
    hls.on(Hls.Events.ERROR, function (_event, data) { onHlsError(data, url, live); });
    hls.loadSource(url);
    hls.attachMedia(video);
  }

  function play() {
    var attempt = video.play();
    if (attempt && attempt.catch) {
      attempt.catch(function () {
        // Autoplay refused (rare when muted): let the viewer press play.
        video.controls = true;
        if (state !== "playing") setState("paused", null);
      });
    }
  }

  function onHlsError(data, url, live) {
    if (!data.fatal) return;
    var Hls = window.Hls;
    var details = data.details;
    var noManifest =
      details === Hls.ErrorDetails.MANIFEST_LOAD_ERROR ||
      details === Hls.ErrorDetails.MANIFEST_LOAD_TIMEOUT ||
      details === Hls.ErrorDetails.MANIFEST_PARSING_ERROR;
    if (noManifest) {
      if (live) {
        teardown();
        setState("offline", publishing === false ? "waiting" : "offline");
        retry(startLive, backoff());
      } else {
        replayMissing();
      }
      return;
    }
    if (data.type === Hls.ErrorTypes.NETWORK_ERROR) {
      setState("loading", "reconnecting");
      retry(function () { if (hls) hls.startLoad(); }, backoff());
      return;
    }
    if (data.type === Hls.ErrorTypes.MEDIA_ERROR) {
      var now = Date.now();
      if (now - mediaErrorAt > 3000) {
        mediaErrorAt = now;
        hls.recoverMediaError();
      } else {
        mediaErrorAt = 0;
        hls.swapAudioCodec();
        hls.recoverMediaError();
      }
      return;
    }
    retry(function () { reload(); }, backoff());
  }

  function reload() {
    if (mode === "live") startLive();
    else if (mode === "replay") startReplay(replayUrl, video.currentTime || 0);
  }

  // --- modes ----------------------------------------------------------------------------

  function startLive() {
    if (status !== "live") return;
    mode = "live";
    if (state !== "offline") setState("loading", "loading");
    load(cfg.liveUrl, true);
  }

  function startReplay(url, at) {
    mode = "replay";
    replayUrl = url;
    if (typeof at === "number" && at > 0) pendingSeek = at;
    setState("loading", "replayLoading");
    load(url, false);
  }

  function replayMissing() {
    teardown();
    if (replayTries < REPLAY_TRIES && status === "ended") {
      replayTries += 1;
      mode = null;
      setState("ended", "preparing");
      retry(function () { startReplay(cfg.replayCandidate, pendingSeek || 0); }, Math.min(MAX_BACKOFF, 1500 * replayTries));
    } else {
      mode = null;
      setState("ended", "ended");
    }
  }

  function applyStatus(nextStatus, nextPublishing) {
    var was = status;
    status = nextStatus || status;
    if (typeof nextPublishing === "boolean") publishing = nextPublishing;
    if (status === "live") {
      if (mode !== "live") {
        failures = 0;
        startLive();
      } else if (publishing && state === "offline") {
        failures = 0;
        startLive(); // the host is back: try at once
      }
    } else if (status === "ended") {
      if (mode === "replay") return;
      teardown();
      mode = null;
      if (replayUrl) {
        startReplay(replayUrl, 0);
      } else if (was !== "ended" || cfg.status !== "ended") {
        replayTries = 0;
        setState("ended", "preparing");
        retry(function () { startReplay(cfg.replayCandidate, 0); }, 1500);
      } else {
        setState("ended", "ended");
      }
    } else {
      teardown();
      mode = null;
      setState("soon", "soon");
    }
  }

  // --- the <video> element ------------------------------------------------------------

  video.addEventListener("playing", function () {
    failures = 0;
    replayTries = 0;
    setState("playing", null);
  });
  video.addEventListener("pause", function () {
    if (mode === "replay" && !video.ended) setState("paused", null);
  });
  video.addEventListener("loadedmetadata", function () {
    if (pendingSeek !== null && mode === "replay") {
      video.currentTime = pendingSeek;
      pendingSeek = null;
    }
  });
  video.addEventListener("volumechange", function () {
    if (!video.muted) userMuted = false;
    unmute.hidden = !(video.muted && state === "playing");
  });
  video.addEventListener("error", function () {
    if (hls) return; // hls.js reports its own errors
    if (mode === "live") {
      setState("offline", publishing === false ? "waiting" : "offline");
      retry(startLive, backoff());
    } else if (mode === "replay") {
      replayMissing();
    }
  });
  unmute.addEventListener("click", function () {
    video.muted = false;
    userMuted = false;
    if (video.paused) play();
    unmute.hidden = true;
  });

  // Watchdog: a live video that stops advancing is reloaded.
  setInterval(function () {
    if (!mode || video.paused || video.seeking || video.ended || state !== "playing") {
      lastTime = video.currentTime;
      stalledFor = 0;
      return;
    }
    if (video.currentTime === lastTime) {
      stalledFor += 2;
      if (stalledFor >= STALL_SECONDS) {
        stalledFor = 0;
        setState("loading", "reconnecting");
        reload();
      }
    } else {
      stalledFor = 0;
    }
    lastTime = video.currentTime;
  }, 2000);

  // --- product moments --------------------------------------------------------------

  var moments = Array.prototype.slice.call(document.querySelectorAll("[data-seek]"));

  function seek(seconds) {
    var at = Math.max(0, Number(seconds) || 0);
    if (mode !== "replay") {
      if (status !== "ended") return false;
      startReplay(replayUrl || cfg.replayCandidate, at);
      return true;
    }
    if (video.readyState >= 1) {
      video.currentTime = at;
      play();
    } else {
      pendingSeek = at;
    }
    return true;
  }

  document.addEventListener("click", function (event) {
    var target = event.target.closest && event.target.closest("[data-seek]");
    if (!target) return;
    event.preventDefault();
    if (seek(target.getAttribute("data-seek"))) {
      if (root.getBoundingClientRect().top < 0) root.scrollIntoView({ behavior: "smooth", block: "start" });
    }
  });

  video.addEventListener("timeupdate", function () {
    if (mode !== "replay" || !moments.length) return;
    var current = null;
    for (var i = 0; i < moments.length; i++) {
      if (Number(moments[i].getAttribute("data-seek")) <= video.currentTime + 0.5) current = moments[i];
    }
    moments.forEach(function (m) {
      if (m === current) m.setAttribute("aria-current", "true");
      else m.removeAttribute("aria-current");
    });
  });

  document.addEventListener("room:status", function (event) {
    var detail = (event && event.detail) || {};
    applyStatus(detail.status, detail.publishing);
  });

  window.roomPlayer = {
    seek: seek,
    video: video,
    get state() { return state; },
    get mode() { return mode; },
  };

  // --- start ---------------------------------------------------------------------------

  if (status === "live") startLive();
  else if (status === "ended" && replayUrl) startReplay(replayUrl, 0);
  else if (status === "ended") setState("ended", "ended");
  else setState("soon", "soon");
})();
