// The Live page: the webcam's frames to /api/v1/live, at most one request in flight; the next frame is
// sent when the answer is back (and not sooner than MIN_GAP_MS after the last one), so a slow server
// lowers the rate instead of queueing frames. The answer (top-5 and latency) is drawn over the video.
(function () {
  const root = document.getElementById("live");
  if (!root) return;
  const video = document.getElementById("camera");
  const overlay = document.getElementById("overlay");
  const status = document.getElementById("status");
  const pause = document.getElementById("pause");
  const save = document.getElementById("save");
  const endpoint = root.dataset.endpoint;
  const MIN_GAP_MS = Number(root.dataset.minGapMs || 200);
  const SIDE = Number(root.dataset.side || 320);  // frames are sent at most this wide
  const session = (crypto.randomUUID && crypto.randomUUID()) || String(Math.random()).slice(2);
  const grab = document.createElement("canvas");
  let paused = false, inFlight = 0, saveNext = false, last = null, sent = 0, answered = 0;

  function csrf() {
    const m = document.cookie.match(/(?:^|; )csrftoken=([^;]+)/);
    return m ? decodeURIComponent(m[1]) : root.dataset.csrf || "";
  }

  function say(text, error) {
    status.textContent = text;
    status.className = error ? "error" : "";
  }

  function draw(answer) {
    const ctx = overlay.getContext("2d");
    overlay.width = video.clientWidth;
    overlay.height = video.clientHeight;
    ctx.clearRect(0, 0, overlay.width, overlay.height);
    ctx.font = "16px sans-serif";
    const lines = [];
    if (answer.top && answer.top.length) {
      answer.top.forEach((p) => lines.push(`${p.label}  ${(100 * p.probability).toFixed(1)}%`));
    } else if (answer.window) {
      lines.push(`collecting frames ${answer.window.have}/${answer.window.need}`);
    }
    lines.push(`${answer.latency_ms.toFixed(0)} ms server, ${answer.round_trip_ms.toFixed(0)} ms round trip`);
    ctx.fillStyle = "rgba(0, 0, 0, 0.55)";
    ctx.fillRect(8, 8, 300, 24 * lines.length + 8);
    ctx.fillStyle = "#fff";
    lines.forEach((line, i) => ctx.fillText(line, 16, 30 + 24 * i));
    root.dataset.answered = String(answered);
    root.dataset.sent = String(sent);
  }

  async function send() {
    if (paused || inFlight || video.readyState < 2) return;
    const scale = Math.min(1, SIDE / video.videoWidth);
    grab.width = Math.round(video.videoWidth * scale);
    grab.height = Math.round(video.videoHeight * scale);
    grab.getContext("2d").drawImage(video, 0, 0, grab.width, grab.height);
    const blob = await new Promise((done) => grab.toBlob(done, "image/jpeg", 0.85));
    const body = new FormData();
    body.append("frame", blob, "frame.jpg");
    body.append("session", session);
    if (saveNext) body.append("save", "true");
    const keep = saveNext;
    saveNext = false;
    inFlight += 1;  // the guard above keeps this at most 1; recorded for tests and curious users
    root.dataset.maxInFlight = String(Math.max(Number(root.dataset.maxInFlight || 0), inFlight));
    sent += 1;
    const started = performance.now();
    try {
      const response = await fetch(endpoint, { method: "POST", body, headers: { "X-CSRFToken": csrf() }, credentials: "same-origin" });
      const answer = await response.json();
      if (!response.ok) throw new Error(answer.error || `HTTP ${response.status}`);
      answer.round_trip_ms = performance.now() - started;
      answered += 1;
      last = answer;
      draw(answer);
      const state = keep && answer.saved ? `saved to History (#${answer.saved})` : "live";
      say(answer.note ? `${state} · ${answer.note}` : state);
    } catch (err) {
      say(String(err.message || err), true);
    } finally {
      inFlight -= 1;
      const wait = Math.max(0, MIN_GAP_MS - (performance.now() - started));
      setTimeout(send, wait);
    }
  }

  pause.addEventListener("click", () => {
    paused = !paused;
    pause.textContent = paused ? "Resume" : "Pause";
    if (paused) video.pause(); else { video.play(); send(); }
    say(paused ? "paused" : "live");
  });
  save.addEventListener("click", () => { saveNext = true; if (paused) { paused = false; send(); paused = true; } });

  const local = ["localhost", "127.0.0.1", "[::1]"].includes(location.hostname);
  if (!window.isSecureContext || !navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    say(local ? "this browser gives no camera access" :
      "the camera works only on localhost or over HTTPS: open this page through https:// (or on the server itself)", true);
    return;
  }
  navigator.mediaDevices.getUserMedia({ video: { width: { ideal: 640 } }, audio: false }).then((stream) => {
    video.srcObject = stream;
    video.addEventListener("loadeddata", () => { say("live"); send(); }, { once: true });
  }).catch((err) => say(`no camera: ${err.message || err}`, true));
})();
